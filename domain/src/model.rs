//! The catalog's records: an `Image` is one `registry/repository:tag` row.

use crate::db::Row;

/// Whether an image can be used: the import/build lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Importing,
    Ready,
    Failed,
    Building,
}

impl Availability {
    pub const ALL: [Availability; 4] = [
        Availability::Importing,
        Availability::Ready,
        Availability::Failed,
        Availability::Building,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Importing => "importing",
            Availability::Ready => "ready",
            Availability::Failed => "failed",
            Availability::Building => "building",
        }
    }

    pub fn parse(s: &str) -> Option<Availability> {
        Availability::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

/// Whether an image is listed for portal users (console `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    Online,
    Offline,
    Pending,
}

impl Publication {
    pub const ALL: [Publication; 3] = [
        Publication::Online,
        Publication::Offline,
        Publication::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Publication::Online => "online",
            Publication::Offline => "offline",
            Publication::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Option<Publication> {
        Publication::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipType {
    Gpu,
    Cpu,
    Npu,
}

impl ChipType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChipType::Gpu => "GPU",
            ChipType::Cpu => "CPU",
            ChipType::Npu => "NPU",
        }
    }

    pub fn parse(s: &str) -> Option<ChipType> {
        [ChipType::Gpu, ChipType::Cpu, ChipType::Npu]
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// One platform of a multi-arch image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub digest: String,
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    pub size: i64,
}

/// One image: a `registry/repository:tag`, with the union of the seeds' fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: i64,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub framework: Option<String>,
    pub framework_version: Option<String>,
    pub frameworks: Vec<String>,
    pub cuda_version: Option<String>,
    pub preset_cuda: bool,
    pub python_version: Option<String>,
    pub chip_type: String,
    pub applicable_scopes: Vec<String>,
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
    pub size: i64,
    pub arch: Option<String>,
    pub os: Option<String>,
    pub is_official: bool,
    pub visibility: String,
    pub owner: Option<String>,
    pub status: String,
    pub publication: String,
    pub origin: String,
    pub include_type: String,
    pub revision: i64,
    /// The console's `imageAddress` as written, when it was written there.
    pub image_address: Option<String>,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The image columns, in the order `Image::from_row` reads them.
pub const IMAGE_COLUMNS: &str = "id, name, display_name, description, category, framework, \
    framework_version, frameworks, cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, \
    registry, repository, tag, digest, size, arch, os, is_official, visibility, owner, status, \
    publication, origin, include_type, revision, image_address, created_by, updated_by, created_at, updated_at";

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Image {
    pub fn from_row(r: &Row<'_>) -> Image {
        Image {
            id: r.i64("id"),
            name: r.str("name").to_owned(),
            display_name: r.opt_string("display_name"),
            description: r.opt_string("description"),
            category: r.opt_string("category"),
            framework: r.opt_string("framework"),
            framework_version: r.opt_string("framework_version"),
            frameworks: json_list(r.str("frameworks")),
            cuda_version: r.opt_string("cuda_version"),
            preset_cuda: r.bool("preset_cuda"),
            python_version: r.opt_string("python_version"),
            chip_type: r.str("chip_type").to_owned(),
            applicable_scopes: json_list(r.str("applicable_scopes")),
            registry: r.str("registry").to_owned(),
            repository: r.str("repository").to_owned(),
            tag: r.str("tag").to_owned(),
            digest: r.opt_string("digest"),
            size: r.i64("size"),
            arch: r.opt_string("arch"),
            os: r.opt_string("os"),
            is_official: r.bool("is_official"),
            visibility: r.str("visibility").to_owned(),
            owner: r.opt_string("owner"),
            status: r.str("status").to_owned(),
            publication: r.str("publication").to_owned(),
            origin: r.str("origin").to_owned(),
            include_type: r.str("include_type").to_owned(),
            revision: r.i64("revision"),
            image_address: r.opt_string("image_address"),
            created_by: r.opt_string("created_by"),
            updated_by: r.opt_string("updated_by"),
            created_at: r.str("created_at").to_owned(),
            updated_at: r.str("updated_at").to_owned(),
        }
    }

    /// The full reference: `registry/repository:tag`.
    pub fn registry_url(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }

    /// Seed 000's `status`: `active` means ready and online.
    pub fn is_active(&self) -> bool {
        self.status == "ready" && self.publication == "online"
    }

    /// The `status` `/api/v1` items show, in seed 000's words: `active` (ready and online);
    /// a ready image that is not online reads as its publication (`offline`, `pending`);
    /// one that is not ready as its availability (`importing`, `failed`, `building`).
    pub fn v1_status(&self) -> &str {
        if self.status == "ready" {
            if self.publication == "online" {
                "active"
            } else {
                &self.publication
            }
        } else {
            &self.status
        }
    }

    /// The console's `imageAddress`: as its client wrote it, else the normalized reference.
    pub fn console_address(&self) -> String {
        self.image_address
            .clone()
            .unwrap_or_else(|| self.registry_url())
    }

    /// The console's `name` (seed 001: the display name), falling back to the unique name.
    pub fn console_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// The frameworks list the console shows: the stored list, or the primary framework.
    pub fn framework_list(&self) -> Vec<String> {
        if !self.frameworks.is_empty() {
            return self.frameworks.clone();
        }
        self.framework.iter().cloned().collect()
    }
}

/// Formats a byte count the way seed 001 shows sizes ("2.5GB").
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{}{}", rounded as i64, UNITS[unit])
    } else {
        format!("{rounded:.1}{}", UNITS[unit])
    }
}

/// Parses a size given as bytes (`2684354560`) or as seed 001 writes it (`"2.5GB"`, `"800 MB"`);
/// units are binary multiples, as [`human_size`] prints them.
pub fn parse_size(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let value: f64 = number.parse().ok().filter(|v: &f64| v.is_finite())?;
    let power = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 1,
        "M" | "MB" | "MIB" => 2,
        "G" | "GB" | "GIB" => 3,
        "T" | "TB" | "TIB" => 4,
        _ => return None,
    };
    let bytes = value * 1024f64.powi(power);
    (bytes <= i64::MAX as f64).then(|| bytes.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_from_bytes_and_human_text() {
        assert_eq!(parse_size("2.5GB"), Some(2_684_354_560));
        assert_eq!(parse_size("800 mb"), Some(838_860_800));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("8GiB"), Some(8_589_934_592));
        for bad in [
            "",
            "GB",
            "-1GB",
            "1.2.3GB",
            "5 parsecs",
            "1e3",
            "99999999999TB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_size(&human_size(2_684_354_560)), Some(2_684_354_560));
    }

    #[test]
    fn sizes_read_like_the_seed() {
        assert_eq!(human_size(8_589_934_592), "8GB");
        assert_eq!(human_size(2_684_354_560), "2.5GB");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1536), "1.5KB");
    }

    #[test]
    fn enums_parse_case_insensitively() {
        assert_eq!(ChipType::parse("gpu"), Some(ChipType::Gpu));
        assert_eq!(Availability::parse("READY"), Some(Availability::Ready));
        assert_eq!(Publication::parse("offline"), Some(Publication::Offline));
        assert_eq!(Publication::parse("gone"), None);
    }
}
