//! Software bills of materials: an SPDX 2.3 JSON document per built image, listing every file
//! of every layer with its SHA-256 (and the SHA-1 SPDX 2.3 asks of files), and the base image
//! as a package when there is one.
//!
//! The layers are read back from their blobs (decompressed as they stream, each file hashed in
//! 64 KiB pieces) and the document is written as it goes: memory stays bounded by one layer's
//! hard-link table, whatever the image's size.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use serde_json::json;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::model::Descriptor;

/// The media type of SPDX JSON documents, the artifact type of hoist's SBOMs.
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";

/// The image an SBOM describes.
#[derive(Clone, Debug)]
pub struct SbomImage {
    /// Its name (where it was written), for the document's name.
    pub name: String,
    /// Its platform, `os/arch[/variant]`.
    pub platform: String,
    /// Its manifest's digest.
    pub manifest: Digest,
    /// Its layers, bottom first, each with the file holding its blob.
    pub layers: Vec<(Descriptor, PathBuf)>,
    /// The base image it was built on: name and manifest digest.
    pub base: Option<(String, Digest)>,
    /// Creation time, seconds since the epoch (the build's, so SBOMs are reproducible).
    pub created: u64,
}

/// Writes an SBOM of each image of `built` (in the layout at `dir`) and attaches it there as
/// a referrer of the image (an untagged `index.json` entry). `base` gives each platform's base
/// image, `name` the image's name, `created` the build time. Returns the images' digests.
pub fn attach_sboms(
    dir: &std::path::Path,
    built: &crate::build::BuildOutput,
    base: &std::collections::BTreeMap<crate::platform::Platform, crate::base::BaseImage>,
    name: &str,
    created: u64,
) -> Result<Vec<Digest>> {
    let layout = crate::layout::Layout::open(dir)?;
    let scratch = tempfile::tempdir().at("create a temporary directory in", std::env::temp_dir())?;
    let mut subjects = Vec::new();
    for built_image in &built.images {
        let what = format!("image {}", built_image.digest);
        let raw = crate::model::RawManifest::new(layout.read_blob(&built_image.digest)?, None, &what)?;
        let manifest = raw.image(&what)?;
        let platform = built_image.platform.to_string();
        let image = SbomImage {
            name: name.to_owned(),
            platform: platform.clone(),
            manifest: built_image.digest.clone(),
            layers: manifest.layers.iter().map(|l| (l.clone(), layout.blob_path(&l.digest))).collect(),
            base: base.get(&built_image.platform).map(|b| (b.name.clone(), b.digest.clone())),
            created,
        };
        let path = scratch.path().join(format!("sbom-{}.spdx.json", platform.replace('/', "-")));
        write_spdx(&image, std::fs::File::create(&path).at("create", &path)?)?;
        let artifact = crate::referrers::Artifact {
            artifact_type: SPDX_MEDIA_TYPE.to_owned(),
            files: vec![crate::referrers::ArtifactFile { path, media_type: SPDX_MEDIA_TYPE.to_owned() }],
            annotations: Default::default(),
        };
        crate::referrers::attach_in_layout(dir, &raw.descriptor(), &artifact)?;
        subjects.push(built_image.digest.clone());
    }
    Ok(subjects)
}

/// A file's checksums.
#[derive(Clone, Debug)]
struct Sums {
    sha1: [u8; 20],
    sha256: [u8; 32],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SPDX's package verification code: the SHA-1 of the sorted, concatenated hex SHA-1s of the
/// package's files (SPDX 2.3, clause 7.9). Sorting the raw sums sorts their hex the same way.
fn verification_code(mut sha1s: Vec<[u8; 20]>) -> String {
    sha1s.sort_unstable();
    let mut code = Sha1::new();
    for sum in &sha1s {
        code.update(hex(sum).as_bytes());
    }
    hex(&code.finalize())
}

/// The image's package (and its base's): the image contains every file listed, so its files
/// are analysed and it carries their verification code; the base is named, not analysed.
fn packages(image: &SbomImage, sha1s: Vec<[u8; 20]>) -> serde_json::Value {
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": image.name,
        "versionInfo": image.manifest.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": true,
        "packageVerificationCode": { "packageVerificationCodeValue": verification_code(sha1s) },
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{ "algorithm": "SHA256", "checksumValue": image.manifest.hex() }],
        "comment": format!("platform {}", image.platform),
    })];
    if let Some((name, digest)) = &image.base {
        packages.push(json!({
            "SPDXID": "SPDXRef-Base",
            "name": name,
            "versionInfo": digest.to_string(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{ "algorithm": "SHA256", "checksumValue": digest.hex() }],
        }));
    }
    serde_json::Value::Array(packages)
}

/// Writes the SPDX 2.3 JSON document of `image` to `out`: the head, then the files as the
/// layers stream, then the packages (whose verification code needs every file's sum) and the
/// relationships. The pyspdxtools validator accepts it.
pub fn write_spdx(image: &SbomImage, out: impl Write) -> Result<()> {
    let mut out = BufWriter::new(out);
    let what = "SBOM";
    let io = |e: std::io::Error| Error::io("write", what, e);
    let json = |source| Error::Json { what: what.to_owned(), source };
    let created =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(image.created));
    let head = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} {}", image.name, image.platform),
        "documentNamespace": format!("urn:hoist:spdx:{}", image.manifest),
        "creationInfo": { "created": created.to_string(), "creators": [format!("Tool: hoist-{}", env!("CARGO_PKG_VERSION"))] },
    });
    // The head object without its closing brace, then the streamed arrays.
    let head = serde_json::to_string(&head).map_err(json)?;
    out.write_all(&head.as_bytes()[..head.len() - 1]).map_err(io)?;
    out.write_all(br#","files":["#).map_err(io)?;
    let mut counts = Vec::new();
    let mut sha1s = Vec::new();
    for (number, (descriptor, path)) in image.layers.iter().enumerate() {
        let mut count = 0usize;
        each_file(descriptor, path, |name, sums| {
            count += 1;
            let entry = json!({
                "SPDXID": format!("SPDXRef-File-{}-{count}", number + 1),
                "fileName": format!("./{name}"),
                "checksums": [
                    { "algorithm": "SHA1", "checksumValue": hex(&sums.sha1) },
                    { "algorithm": "SHA256", "checksumValue": hex(&sums.sha256) },
                ],
                "comment": format!("layer {} ({})", number + 1, descriptor.digest),
            });
            if !sha1s.is_empty() {
                out.write_all(b",").map_err(io)?;
            }
            sha1s.push(sums.sha1);
            serde_json::to_writer(&mut out, &entry).map_err(json)
        })?;
        counts.push(count);
    }
    out.write_all(br#"],"packages":"#).map_err(io)?;
    serde_json::to_writer(&mut out, &packages(image, sha1s)).map_err(json)?;
    out.write_all(br#","relationships":["#).map_err(io)?;
    let relationship =
        |a: &str, kind: &str, b: &str| json!({ "spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b });
    serde_json::to_writer(&mut out, &relationship("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image")).map_err(json)?;
    if image.base.is_some() {
        out.write_all(b",").map_err(io)?;
        serde_json::to_writer(&mut out, &relationship("SPDXRef-Image", "DESCENDANT_OF", "SPDXRef-Base"))
            .map_err(json)?;
    }
    for (number, count) in counts.iter().enumerate() {
        for n in 1..=*count {
            out.write_all(b",").map_err(io)?;
            let file = format!("SPDXRef-File-{}-{n}", number + 1);
            serde_json::to_writer(&mut out, &relationship("SPDXRef-Image", "CONTAINS", &file)).map_err(json)?;
        }
    }
    out.write_all(b"]}\n").map_err(io)?;
    out.flush().map_err(io)
}

/// Calls `found` with the path and checksums of every regular file (and hard link) of a layer
/// blob, in tar order; whiteouts are left out.
fn each_file(
    descriptor: &Descriptor,
    path: &std::path::Path,
    mut found: impl FnMut(&str, &Sums) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(path).at("open", path)?;
    let kind = descriptor.media_type.as_str();
    let reader: Box<dyn Read> = if kind.contains("gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)))
    } else if kind.contains("zstd") {
        Box::new(zstd::stream::read::Decoder::new(file).at("read", path)?)
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader);
    // Hard links name an earlier file of the same layer: its sums, kept for this layer only.
    let mut seen: HashMap<String, Sums> = HashMap::new();
    let mut buffer = vec![0u8; 64 * 1024];
    for entry in archive.entries().at("read the layer", path)? {
        let mut entry = entry.at("read the layer", path)?;
        let name = entry.path().at("read the layer", path)?.to_string_lossy().trim_start_matches("./").to_owned();
        let base = name.rsplit('/').next().unwrap_or_default();
        if base.starts_with(".wh.") {
            continue;
        }
        let kind = entry.header().entry_type();
        let sums = if kind.is_file() {
            let (mut sha1, mut sha256) = (Sha1::new(), Sha256::new());
            loop {
                let n = entry.read(&mut buffer).at("read the layer", path)?;
                if n == 0 {
                    break;
                }
                sha1.update(&buffer[..n]);
                sha256.update(&buffer[..n]);
            }
            Sums { sha1: sha1.finalize().into(), sha256: sha256.finalize().into() }
        } else if kind.is_hard_link() {
            let target = entry.link_name().at("read the layer", path)?.unwrap_or_default();
            match seen.get(target.to_string_lossy().trim_start_matches("./")) {
                Some(sums) => sums.clone(),
                None => continue,
            }
        } else {
            continue;
        };
        found(&name, &sums)?;
        seen.insert(name, sums);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MediaType;

    #[test]
    fn every_file_is_listed_with_its_checksums_and_hard_links_share_them() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer.tar.gz");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        builder.append_data(&mut header, "app/hello", &b"hello"[..]).unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Link);
        link.set_size(0);
        builder.append_link(&mut link, "app/alias", "app/hello").unwrap();
        let mut whiteout = tar::Header::new_gnu();
        whiteout.set_size(0);
        builder.append_data(&mut whiteout, "app/.wh.gone", &b""[..]).unwrap();
        std::fs::write(&layer, builder.into_inner().unwrap().finish().unwrap()).unwrap();
        let descriptor = Descriptor::new(MediaType::OciLayerGzip, Digest::of(b"x"), 1);
        let image = SbomImage {
            name: "app".into(),
            platform: "linux/amd64".into(),
            manifest: Digest::of(b"manifest"),
            layers: vec![(descriptor, layer)],
            base: Some(("base:1".into(), Digest::of(b"base"))),
            created: 0,
        };
        let mut out = Vec::new();
        write_spdx(&image, &mut out).unwrap();
        let document: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let files = document["files"].as_array().unwrap();
        assert_eq!(files.len(), 2, "{document}");
        assert_eq!(files[0]["fileName"], "./app/hello");
        assert_eq!(files[1]["fileName"], "./app/alias");
        let hello = Digest::of(b"hello");
        assert_eq!(files[0]["checksums"][1]["checksumValue"], hello.hex());
        assert_eq!(files[1]["checksums"], files[0]["checksums"]);
        assert_eq!(document["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        assert_eq!(document["relationships"].as_array().unwrap().len(), 4, "describes, base, two files");
        let image = &document["packages"][0];
        assert_eq!(image["filesAnalyzed"], true, "the image contains the files listed");
        let hello_sha1 = files[0]["checksums"][0]["checksumValue"].as_str().unwrap();
        let code = hex(&Sha1::digest(format!("{hello_sha1}{hello_sha1}")));
        assert_eq!(image["packageVerificationCode"]["packageVerificationCodeValue"], code);
        assert_eq!(document["packages"][1]["filesAnalyzed"], false, "the base is named, not analysed");
    }
}
