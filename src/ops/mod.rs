//! The verbs of hoist's library: each takes a [`Session`](crate::session::Session) and typed
//! options, does one whole workflow, and returns a typed report; none prints. The command line
//! parses its arguments into these options, calls one verb and prints what it returns.

pub mod build;
pub mod publish;

pub use build::{build, Build, BuildObserver, BuildReport};
pub use publish::{publish, Publish, PublishOptions};
