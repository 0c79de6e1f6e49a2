//! `imgflow publish`: build, validate and push images, then move their tags.

pub mod push;
