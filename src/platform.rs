//! Target platforms (`os/arch[/variant]`) and the placeholders they expand in layer sources.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// An image platform such as `linux/amd64` or `linux/arm64/v8`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in Go's naming, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// CPU variant, e.g. `v7` for `linux/arm/v7`.
    pub variant: Option<String>,
    /// OS version (Windows images).
    pub os_version: Option<String>,
    /// OS features (Windows images).
    pub os_features: Vec<String>,
}

impl Platform {
    /// Whether two platforms are the same for an index entry: `linux/arm64` and
    /// `linux/arm64/v8` are; the OS version must match when both name one.
    pub fn same_as(&self, other: &Platform) -> bool {
        let variant = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) | (_, None) => None,
            (_, v) => v.map(str::to_owned),
        };
        let os_version = match (&self.os_version, &other.os_version) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.os == other.os && self.architecture == other.architecture && variant(self) == variant(other) && os_version
    }

    /// The platform as one path-safe word: `linux_arm64_v8`, `linux_amd64`.
    pub fn underscored(&self) -> String {
        self.to_string().replace('/', "_")
    }

    /// Expands `{os}`, `{arch}`, `{variant}` and `{platform}` in `template`.
    ///
    /// Any other `{name}` is an error, so a typo never turns into a literal path.
    ///
    /// ```
    /// let platform: hoist::Platform = "linux/arm/v7".parse().unwrap();
    /// assert_eq!(platform.expand("dist/{os}_{arch}/").unwrap(), "dist/linux_arm/");
    /// assert_eq!(platform.expand("out/{platform}").unwrap(), "out/linux_arm_v7");
    /// ```
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let end = after
                .find('}')
                .ok_or_else(|| Error::invalid("layer source", template, "a '{' is not closed by '}'"))?;
            let value = match &after[..end] {
                "os" => self.os.clone(),
                "arch" => self.architecture.clone(),
                "variant" => self.variant.clone().unwrap_or_default(),
                "platform" => self.underscored(),
                other => {
                    return Err(Error::invalid(
                        "layer source",
                        template,
                        format!("unknown placeholder {{{other}}}; use {{os}}, {{arch}}, {{variant}} or {{platform}}"),
                    ))
                }
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Operating systems hoist accepts in `--platform` (Go's `GOOS` names).
pub const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

/// Architectures hoist accepts in `--platform` (Go's `GOARCH` names), after normalisation.
pub const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64",
    "s390x", "wasm",
];

/// The names runtimes use for `os`, `arch` and `variant`, as containerd normalises them:
/// `x86_64` is `amd64`, `aarch64` is `arm64`, `armhf` is `arm/v7`, `arm64/v8` is `arm64`, a
/// bare `arm` is `arm/v7`, `i686` is `386`, `macos` is `darwin`.
fn normalise(os: &str, arch: &str, variant: Option<&str>) -> (String, String, Option<String>) {
    let os = match os {
        "macos" | "osx" => "darwin",
        other => other,
    };
    let (arch, variant) = match (arch, variant) {
        ("x86_64" | "x86-64" | "amd64", Some("v1") | None) => ("amd64", None),
        ("x86_64" | "x86-64" | "amd64", variant) => ("amd64", variant),
        ("i386" | "i486" | "i586" | "i686" | "x86" | "386", _) => ("386", None),
        ("aarch64" | "arm64", Some("8" | "v8" | "v8.0") | None) => ("arm64", None),
        ("aarch64" | "arm64", variant) => ("arm64", variant),
        ("armhf", _) => ("arm", Some("v7")),
        ("armel", _) => ("arm", Some("v6")),
        ("arm", None | Some("7")) => ("arm", Some("v7")),
        ("arm", Some("5")) => ("arm", Some("v5")),
        ("arm", Some("6")) => ("arm", Some("v6")),
        ("arm", Some("8")) => ("arm", Some("v8")),
        ("ppc64el", variant) => ("ppc64le", variant),
        ("riscv64gc", variant) => ("riscv64", variant),
        (arch, variant) => (arch, variant),
    };
    (os.to_owned(), arch.to_owned(), variant.map(str::to_owned))
}

impl Platform {
    /// The platform of the machine hoist runs on, for builds that name none: Linux with this
    /// machine's architecture (images run Linux whatever the host, as docker's default does).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let (os, architecture, variant) = normalise("linux", arch, None);
        Platform { os, architecture, variant, ..Platform::default() }
    }
}

impl FromStr for Platform {
    type Err = Error;

    /// Parses `os/arch[/variant]`, normalised as containerd does, and refuses an OS or
    /// architecture that no runtime knows (naming the known ones).
    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid_word = |w: &str| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| valid_word(p)) {
            return Err(Error::invalid(
                "platform",
                s,
                "expected os/arch[/variant] in lowercase, e.g. linux/amd64 or linux/arm/v7",
            ));
        }
        let (os, architecture, variant) = normalise(parts[0], parts[1], parts.get(2).copied());
        if !KNOWN_OS.contains(&os.as_str()) {
            return Err(Error::invalid(
                "platform",
                s,
                format!("unknown operating system {os:?}; known: {}", KNOWN_OS.join(", ")),
            ));
        }
        if !KNOWN_ARCH.contains(&architecture.as_str()) {
            return Err(Error::invalid(
                "platform",
                s,
                format!(
                    "unknown architecture {:?}; known: {} (also x86_64, aarch64, armhf, armel, i686, normalised to those)",
                    parts[1],
                    KNOWN_ARCH.join(", ")
                ),
            ));
        }
        Ok(Platform { os, architecture, variant, ..Platform::default() })
    }
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays_two_and_three_part_platforms() {
        assert_eq!(platform("linux/amd64").to_string(), "linux/amd64");
        let arm = platform("linux/arm/v6");
        assert_eq!(arm.variant.as_deref(), Some("v6"));
        assert_eq!(arm.underscored(), "linux_arm_v6");
    }

    #[test]
    fn normalises_as_containerd_does() {
        for (given, normal) in [
            ("linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/aarch64/v8", "linux/arm64"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/i386", "linux/386"),
            ("linux/i686", "linux/386"),
            ("macos/arm64", "darwin/arm64"),
            ("windows/amd64", "windows/amd64"),
        ] {
            assert_eq!(platform(given).to_string(), normal, "{given}");
        }
    }

    #[test]
    fn unknown_os_or_architecture_is_refused_with_the_known_ones() {
        let err = "linux/amd46".parse::<Platform>().unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        let text = err.to_string();
        assert!(text.contains("amd46") && text.contains("arm64") && text.contains("s390x"), "{text}");
        let text = "linx/amd64".parse::<Platform>().unwrap_err().to_string();
        assert!(text.contains("linx") && text.contains("windows"), "{text}");
    }

    #[test]
    fn the_host_platform_is_a_known_one() {
        let host = Platform::host();
        assert_eq!(host.to_string().parse::<Platform>().unwrap(), host);
    }

    #[test]
    fn arm64_v8_is_arm64() {
        assert!(platform("linux/arm64").same_as(&platform("linux/arm64/v8")));
        assert!(!platform("linux/arm/v7").same_as(&platform("linux/arm/v6")));
        assert!(!platform("linux/amd64").same_as(&platform("linux/arm64")));
    }

    #[test]
    fn rejects_malformed_platforms() {
        for bad in ["linux", "linux/", "/amd64", "linux/amd64/v8/x", "Linux/AMD64", "linux amd64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn expands_every_placeholder() {
        let p = platform("linux/arm/v7");
        assert_eq!(p.expand("dist/{os}_{arch}{variant}/{platform}").unwrap(), "dist/linux_armv7/linux_arm_v7");
        assert_eq!(platform("linux/amd64").expand("a/{variant}b").unwrap(), "a/b");
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_errors() {
        let p = platform("linux/amd64");
        let err = p.expand("dist/{osarch}").unwrap_err().to_string();
        assert!(err.contains("{osarch}"), "{err}");
        assert!(p.expand("dist/{os").is_err());
    }
}
