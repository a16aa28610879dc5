//! The rules of the service's resources, with no HTTP in them: what a
//! collection name and a record id may be, the fields the server keeps, a
//! record's representation, merge patch, tokens and grants, time, and the
//! lines of an import.

pub mod collections;
pub mod idempotency;
pub mod imports;
pub mod listing;
pub mod records;
pub mod time;
pub mod tokens;
