//! (module under construction)
pub mod model;
