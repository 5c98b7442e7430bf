//! The verbs of hoist's library: each takes a [`Session`](crate::session::Session) and typed
//! options, does one whole workflow, and returns a typed report; none prints. The command line
//! parses its arguments into these options, calls one verb and prints what it returns.

pub mod build;
pub mod copy;
pub mod index;
pub mod inspect;
pub mod login;
pub mod manifest;
pub mod publish;
pub mod referrers;
pub mod tag;

pub use build::{build, Build, BuildObserver, BuildReport};
pub use copy::{copy, Copy, CopyReport};
pub use index::{push_list, update_index, IndexUpdate, PushList};
pub use inspect::{catalog, inspect, tags, Inspect, InspectReport};
pub use login::{login, logout, Login};
pub use manifest::{
    annotate_list, create_list, inspect_list, remove_lists, Annotate, CreateList, InspectList, ListView,
};
pub use publish::{publish, Publish, PublishOptions};
pub use referrers::{attach, copy_referrers, referrers, CopyReferrers};
pub use tag::{delete, digest, tag, Tag};
