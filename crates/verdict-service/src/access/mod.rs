//! Who is calling ([`authenticate`]: bearer tokens, the bootstrap admin) and
//! what they may do ([`authorize`]: scopes from the surface's table,
//! collection grants, write quotas).

pub mod authenticate;
pub mod authorize;
