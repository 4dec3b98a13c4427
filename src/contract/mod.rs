//! (module under construction)
pub mod registration;
