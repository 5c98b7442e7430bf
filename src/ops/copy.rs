//! Copying, what `hoist copy` does: an image or a whole index from any source to any sink
//! ([`publish`]), then, when asked, the artifacts that refer to it (SBOMs, signatures) and to
//! each image of the index.

use crate::error::{Error, Result};
use crate::layer::Compression;
use crate::location::Location;
use crate::ops::publish::{publish, Publish};
use crate::ops::referrers::{copy_referrers, CopyReferrers};
use crate::referrers::ReferrerOptions;
use crate::session::Session;
use crate::transfer::{Observer, Report};

/// What to copy, and whether its referrers go with it.
#[derive(Clone, Debug)]
pub struct Copy {
    /// The image or index, where from, where to, and how.
    pub publish: Publish,
    /// Copy the referrers too, written as these options say. They name the image by digest,
    /// so its layers then go as they are.
    pub referrers: Option<ReferrerOptions>,
    /// How the source was named (for messages).
    pub name: String,
}

/// What a copy did.
#[derive(Clone, Debug)]
pub struct CopyReport {
    /// The image's or index's transfer.
    pub report: Report,
    /// How many referrers were copied, when they were asked for (none in a dry run).
    pub referrers_copied: Option<usize>,
}

/// Copies what `request` says, telling `observer` about the image's transfer.
pub fn copy(session: &Session, request: &Copy, observer: &dyn Observer) -> Result<CopyReport> {
    let mut image = request.publish.clone();
    let Some(options) = &request.referrers else {
        return Ok(CopyReport { report: publish(session, &image, observer)?, referrers_copied: None });
    };
    let keeps_referrers = |l: &Location| matches!(l, Location::Registry(_) | Location::Layout { .. });
    if !(keeps_referrers(&image.from) && keeps_referrers(&image.to)) {
        return Err(Error::invalid(
            "--referrers",
            format!("{} → {}", image.from, image.to),
            "referrers live in registries and OCI layouts (oci:DIR), not in archives",
        ));
    }
    // Referrers name the image by its digest: its layers go as they are.
    image.options.transfer.compression = Compression::None;
    let report = publish(session, &image, observer)?;
    if image.options.transfer.dry_run {
        return Ok(CopyReport { report, referrers_copied: None });
    }
    let referrers = CopyReferrers {
        from: image.from,
        to: image.to,
        root: report.digest.parse()?,
        name: request.name.clone(),
        options: options.clone(),
    };
    let copied = copy_referrers(session, &referrers)?;
    Ok(CopyReport { report, referrers_copied: Some(copied) })
}
