//! Builds a two-platform image from two directories with hoist's library and pushes it:
//!
//! ```sh
//! cargo run --example publish -- REGISTRY/REPOSITORY:TAG [DIST]
//! ```
//!
//! `DIST/linux_amd64/` and `DIST/linux_arm64/` (default `dist/`) become `/app/` in the
//! `linux/amd64` and `linux/arm64` images, under one index pushed to REGISTRY/REPOSITORY:TAG.
//! Registries are reached as by the `hoist` command: docker's credentials and certificates,
//! `$HOIST_INSECURE_REGISTRIES`, loopback registries over plain HTTP. Prints the index digest.

use hoist::build::BuildOptions;
use hoist::config::ImageSettings;
use hoist::location::Location;
use hoist::ops::{build, Build};
use hoist::session::{Session, Settings};
use hoist::transfer::Silent;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let target: Location = args.next().ok_or("usage: publish REGISTRY/REPOSITORY:TAG [DIST]")?.parse()?;
    let dist = args.next().unwrap_or_else(|| "dist".to_owned());
    let options = BuildOptions {
        platforms: vec!["linux/amd64".parse()?, "linux/arm64".parse()?],
        layers: vec![format!("{dist}/{{os}}_{{arch}}/:/app/").parse()?],
        context: std::env::current_dir()?,
        image: ImageSettings { entrypoint: Some(vec!["/app/server".into()]), ..ImageSettings::default() },
        ..BuildOptions::default()
    };
    let session = Session::new(Settings::from_environment());
    let request =
        Build { options, output: None, base: None, push: Some(target), publish: Default::default(), sbom: false };
    let report = build(&session, request, &Silent)?;
    println!("{}", report.built.digest);
    Ok(())
}
