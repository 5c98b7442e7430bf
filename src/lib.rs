//! hoist builds reproducible multi-platform OCI images from directories and publishes them.
//!
//! The library is organised by concept: [`reference`] and [`platform`] parse what users type,
//! [`layer`] turns directories into compressed tar blobs, [`config`] writes image
//! configurations, [`layout`] stores blobs and tags in an OCI image layout, and [`build`] ties
//! them together into per-platform images and an index.
#![deny(missing_docs)]

pub mod base;
pub mod build;
pub mod buildfile;
pub mod cache;
pub mod config;
pub mod copy;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod index;
pub mod json;
pub mod layer;
pub mod layout;
pub mod location;
pub mod offload;
pub mod platform;
pub mod push;
pub mod reference;
pub mod registry;
pub mod secret;
pub mod source;

pub use digest::Digest;
pub use error::{Error, Result};
pub use platform::Platform;
pub use reference::Reference;
