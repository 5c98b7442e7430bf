//! hoist's model of OCI content, read and written: media types, descriptors, image configs, and
//! manifests and indexes as typed values kept beside their exact bytes.
//!
//! Everything read from a layout or a registry is parsed into these types, so a size that is
//! negative or not a number, or a digest that is malformed, is refused at the boundary.

pub mod config;
pub mod descriptor;
pub mod manifest;
pub mod media_type;

pub use self::config::{Field, History, ImageConfig, RootFs, RunConfig};
pub use self::descriptor::Descriptor;
pub use self::manifest::{Document, ImageIndex, ImageManifest, RawManifest, MAX_MANIFEST_BYTES};
pub use self::media_type::MediaType;
