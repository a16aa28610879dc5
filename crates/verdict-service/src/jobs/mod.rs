//! Background work: the worker that claims, runs and resumes exports and
//! imports, and the expiry of what is kept only for a while.

pub mod expiry;
pub mod worker;
