//! Integration tests: the `hoist` binary, its output checked by real peers (umoci, skopeo)
//! and against the OCI image-spec schemas.

mod build;
mod cli;
mod util;
