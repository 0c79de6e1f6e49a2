//! `imgflow publish`: build, validate and push the team's images (issue 7).

pub mod docker;
