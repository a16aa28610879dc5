//! Background jobs: the worker that claims, runs and resumes exports and imports.

pub mod worker;
