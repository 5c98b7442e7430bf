//! Integration tests: the `hoist` binary, its output checked by real peers (umoci, skopeo)
//! and against the OCI image-spec schemas.
#![allow(clippy::unwrap_used)]

mod archive;
mod base;
mod build;
mod cache;
mod cancel;
mod cli;
mod core;
mod economy;
mod hostile;
mod index;
mod progress;
mod push;
mod quirks;
mod referrers;
mod registry;
mod release;
mod resume;
mod sbom;
mod session;
mod tls;
mod util;
mod verbs;
