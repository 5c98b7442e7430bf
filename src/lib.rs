//! hoist builds reproducible multi-platform OCI images from directories and publishes them.
//!
//! The library is organised by concept: [`reference`](mod@reference) and [`platform`] parse
//! what users type, [`model`] is the typed read model (media types, descriptors, manifests),
//! [`layer`] turns directories into compressed tar blobs, [`config`] writes image
//! configurations, [`layout`] stores blobs and tags in an OCI image layout, and [`build`] ties
//! them together into per-platform images and an index. Content moves one way: a [`source`]
//! (layout or registry) is walked by [`graph`] into a plan, and [`transfer`] sends the plan to
//! a [`sink`] (layout or registry); push, copy, index publishing and base images all run
//! through it.
#![deny(missing_docs)]

pub(crate) mod amend;
pub mod archive;
pub mod base;
pub mod blob;
pub mod build;
pub mod buildfile;
pub mod cache;
pub mod cancel;
pub mod compress;
pub mod config;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod graph;
pub mod index;
pub mod json;
pub mod layer;
pub mod layout;
pub mod location;
pub mod model;
pub mod offload;
pub mod ops;
pub mod places;
pub mod platform;
pub mod reference;
pub mod referrers;
pub mod registry;
pub mod resume;
pub mod sbom;
pub mod secret;
pub mod session;
pub mod sink;
pub mod size;
pub mod source;
pub mod text;
pub mod transfer;
mod upload;

pub use digest::Digest;
pub use error::{Error, Result};
pub use platform::Platform;
pub use reference::Reference;
