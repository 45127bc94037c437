//! Where Coffre may put object bytes: the operators and storage targets of a deployment, the
//! jurisdictions they sit in, bucket residency policies, and the choice of targets for each replica.
//!
//! Pure data and computation, no I/O: the binary parses its TOML config and hands the raw
//! `[[operators]]`, `[[targets]]` and `[jurisdictions]` sections to [`Topology::from_raw`].

pub mod bound;
pub mod config;
pub mod country;
pub mod place;
pub mod policy;
pub mod topology;

pub use bound::PolicyRequest;
pub use config::{Problem, RawOperator, RawQualification, RawTarget, TopologyError};
pub use country::{Country, UnknownCountry};
pub use place::PlacementError;
pub use policy::{PolicyError, ResidencyPolicy};
pub use topology::{Operator, OperatorId, Qualification, Target, TargetId, TargetKind, Topology};
