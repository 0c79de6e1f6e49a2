//! The publish pipeline: building, checking, pushing and pinning the team's images.
pub mod pin;
