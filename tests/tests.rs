//! Integration tests: the `hoist` binary, its output checked by real peers (umoci, skopeo)
//! and against the OCI image-spec schemas.
#![allow(clippy::unwrap_used)]

mod archive;
mod base;
mod build;
mod cache;
mod cli;
mod core;
mod index;
mod push;
mod referrers;
mod registry;
mod release;
mod sbom;
mod util;
