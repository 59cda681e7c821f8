//! Parsing a list request's query string into a validated [`ListQuery`], once, at the edge.
//!
//! Unknown parameters are ignored (portals send extra keys); known ones that are malformed,
//! out of range or repeated get a 400 naming the parameter. Empty values mean "no filter".

use crate::envelope::ApiError;
use crate::model::{Availability, ChipType, Publication};

pub const DEFAULT_PAGE_SIZE: u32 = 10;
pub const MAX_PAGE_SIZE: u32 = 100;
const MAX_PAGE: u32 = 10_000_000;
const MAX_FILTER_LEN: usize = 256;

/// A column a list may be sorted by: never a raw name reaching SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
    Size,
    Category,
    Framework,
    Status,
}

impl SortKey {
    /// Accepted `orderBy` values (snake_case, camelCase and seed 003's `createdTime`).
    pub const NAMES: &'static [(&'static str, SortKey)] = &[
        ("id", SortKey::Id),
        ("image_id", SortKey::Id),
        ("name", SortKey::Name),
        ("created_at", SortKey::CreatedAt),
        ("createdAt", SortKey::CreatedAt),
        ("createdTime", SortKey::CreatedAt),
        ("updated_at", SortKey::UpdatedAt),
        ("updatedAt", SortKey::UpdatedAt),
        ("size", SortKey::Size),
        ("category", SortKey::Category),
        ("framework", SortKey::Framework),
        ("status", SortKey::Status),
    ];

    pub fn parse(s: &str) -> Option<SortKey> {
        SortKey::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
    }

    pub fn column(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Name => "name",
            SortKey::CreatedAt => "created_at",
            SortKey::UpdatedAt => "updated_at",
            SortKey::Size => "size",
            SortKey::Category => "category",
            SortKey::Framework => "framework",
            SortKey::Status => "status",
        }
    }

    /// Whether the column may be NULL (where SQLite and PostgreSQL sort NULLs differently).
    pub fn nullable(self) -> bool {
        matches!(self, SortKey::Category | SortKey::Framework)
    }

    fn allowed() -> String {
        let names: Vec<&str> = SortKey::NAMES.iter().map(|(n, _)| *n).collect();
        names.join(", ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// One page: 1-based number and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

impl Page {
    pub fn offset(self) -> i64 {
        (self.number as i64 - 1) * self.size as i64
    }

    pub fn total_pages(self, total: i64) -> i64 {
        (total + self.size as i64 - 1) / self.size as i64
    }
}

/// The `status` filter: an availability, or seed 000's `active` (ready and online).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Is(Availability),
    Active,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub category: Option<String>,
    pub framework: Option<String>,
    pub is_official: Option<bool>,
    pub chip_type: Option<ChipType>,
    pub applicable_scope: Option<String>,
    /// Fuzzy match on name and display name.
    pub name: Option<String>,
    /// Free-text search over name, display name, description and framework.
    pub text: Option<String>,
    pub tag: Option<String>,
    pub ready: Option<bool>,
    pub owner: Option<String>,
    pub status: Option<StatusFilter>,
    pub publication: Option<Publication>,
    /// Images whose CUDA this NVIDIA driver runs (images without a known CUDA are left out).
    pub driver_version: Option<crate::image_facts::DriverVersion>,
    /// Images whose last successful scan found nothing above this severity rank.
    pub max_severity: Option<i64>,
}

/// How the v1 list is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `{items, pagination}` (seed 000).
    Default,
    /// `flat=true`: `{totalCount, images:[{id,tag,…}]}` (seed 003).
    Flat,
    /// `flat=false`: `{totalCount, images:[{registryHost, repo, artifacts}]}` (seed 003).
    Grouped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub filters: Filters,
    pub page: Page,
    pub sort: Sort,
    /// Whether `orderBy` or `order` was given (the grouped view then orders repositories by it).
    pub sort_requested: bool,
    pub view: View,
}

/// A character no name or search term may hold: NUL and the other C0 controls, DEL, and
/// the bidi controls that make text display differently from what it matches
/// ("Trojan Source"). NUL also breaks PostgreSQL text parameters (a 500 before this check).
pub fn forbidden_char(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}' | '\u{200e}' | '\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// What `forbidden_char` found, for a 400 that names the parameter or field.
pub fn forbidden_char_problem(c: char) -> String {
    format!(
        "contains the control or bidi character U+{:04X}, which names and search terms may not hold",
        c as u32
    )
}

/// Query pairs, checked for repeats of the parameters we read.
struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// The pairs, refused whole when any name or value holds a forbidden character.
    fn new(pairs: &'a [(String, String)]) -> Result<Params<'a>, ApiError> {
        for (k, v) in pairs {
            if let Some(c) = forbidden_char(k) {
                return Err(ApiError::bad_request(format!(
                    "a query parameter name {}",
                    forbidden_char_problem(c)
                )));
            }
            if let Some(c) = forbidden_char(v) {
                return Err(ApiError::bad_param(k, forbidden_char_problem(c)));
            }
        }
        Ok(Params { pairs })
    }

    /// The value of `name`, `None` when absent or empty; 400 when given twice.
    fn get(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        let mut found = self
            .pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim());
        let first = found.next();
        if found.next().is_some() {
            return Err(ApiError::bad_param(name, "given more than once"));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// The first of several alias names that is present.
    fn get_any(&self, names: &[&'static str]) -> Result<Option<(&'static str, &'a str)>, ApiError> {
        for n in names {
            if let Some(v) = self.get(n)? {
                return Ok(Some((n, v)));
            }
        }
        Ok(None)
    }

    fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name)? {
            Some(v) if v.chars().count() > MAX_FILTER_LEN => Err(ApiError::bad_param(
                name,
                format!("longer than {MAX_FILTER_LEN} characters"),
            )),
            v => Ok(v.map(str::to_owned)),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name)?.map(|v| parse_bool(name, v)).transpose()
    }

    fn number(&self, name: &str, min: u32, max: u32) -> Result<Option<u32>, ApiError> {
        self.get(name)?
            .map(|v| parse_number(name, v, min, max))
            .transpose()
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_param(
            name,
            format!("'{v}' is not a boolean (use true or false)"),
        )),
    }
}

fn parse_number(name: &str, v: &str, min: u32, max: u32) -> Result<u32, ApiError> {
    let range = || ApiError::bad_param(name, format!("must be an integer from {min} to {max}"));
    let n: i64 = v.parse().map_err(|_| range())?;
    if n < min as i64 || n > max as i64 {
        return Err(range());
    }
    Ok(n as u32)
}

impl Filters {
    /// Filters common to both APIs, read under the given parameter names.
    fn read(p: &Params<'_>, chip: &str, scope: &str) -> Result<Filters, ApiError> {
        let chip_type = match p.get(chip)? {
            Some(v) => Some(ChipType::parse(v).ok_or_else(|| {
                ApiError::bad_param(chip, format!("'{v}' is not one of GPU, CPU, NPU"))
            })?),
            None => None,
        };
        Ok(Filters {
            category: p.text("category")?,
            framework: p.text("framework")?,
            is_official: p.bool("is_official")?,
            chip_type,
            applicable_scope: p.text(scope)?,
            name: p.text("name")?,
            ..Filters::default()
        })
    }
}

impl ListQuery {
    /// `GET /api/v1/images` parameters (seeds 000 and 003).
    pub fn from_v1(pairs: &[(String, String)]) -> Result<ListQuery, ApiError> {
        let p = Params::new(pairs)?;
        let mut filters = Filters::read(&p, "chip_type", "applicable_scope")?;
        filters.text = p.text("q")?;
        filters.tag = p.text("tag")?;
        filters.driver_version = match p.get("driver_version")? {
            Some(v) => Some(
                crate::image_facts::DriverVersion::parse(v)
                    .map_err(|e| ApiError::bad_param("driver_version", e))?,
            ),
            None => None,
        };
        filters.max_severity = match p.get("max_severity")? {
            Some(v) => Some(crate::image_facts::severity_rank(v).ok_or_else(|| {
                ApiError::bad_param(
                    "max_severity",
                    format!("'{v}' is not one of none, low, medium, high, critical"),
                )
            })?),
            None => None,
        };
        filters.ready = p.bool("ready")?;
        filters.owner = match p.get_any(&["userName", "owner"])? {
            Some((name, _)) => p.text(name)?,
            None => None,
        };
        filters.status = match p.get("status")? {
            Some(v) if v.eq_ignore_ascii_case("active") => Some(StatusFilter::Active),
            Some(v) => Some(StatusFilter::Is(Availability::parse(v).ok_or_else(
                || {
                    ApiError::bad_param(
                        "status",
                        format!("'{v}' is not one of importing, ready, failed, building, active"),
                    )
                },
            )?)),
            None => None,
        };

        let size = p
            .number("page_size", 1, MAX_PAGE_SIZE)?
            .unwrap_or(DEFAULT_PAGE_SIZE);
        let page = p.number("page", 1, MAX_PAGE)?;
        let page_num = p.number("page_num", 0, MAX_PAGE - 1)?;
        let number = match (page, page_num) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_param(
                    "page_num",
                    "use either page (1-based) or page_num (0-based), not both",
                ));
            }
            (Some(n), None) => n,
            (None, Some(n)) => n + 1,
            (None, None) => 1,
        };

        let sort_requested =
            p.get_any(&["orderBy", "order_by"])?.is_some() || p.get("order")?.is_some();
        let key = match p.get_any(&["orderBy", "order_by"])? {
            Some((name, v)) => SortKey::parse(v).ok_or_else(|| {
                ApiError::bad_param(
                    name,
                    format!("'{v}' is not sortable; use one of {}", SortKey::allowed()),
                )
            })?,
            None => SortKey::Id,
        };
        let descending = match p.get("order")? {
            Some(v) if v.eq_ignore_ascii_case("asc") => false,
            Some(v) if v.eq_ignore_ascii_case("desc") => true,
            Some(v) => {
                return Err(ApiError::bad_param(
                    "order",
                    format!("'{v}' is not asc or desc"),
                ));
            }
            None => false,
        };

        let view = match p.get("flat")? {
            None => View::Default,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" => View::Flat,
                "false" => View::Grouped,
                _ => {
                    return Err(ApiError::bad_param(
                        "flat",
                        format!("'{v}' is not true or false"),
                    ));
                }
            },
        };

        Ok(ListQuery {
            filters,
            page: Page { number, size },
            sort: Sort { key, descending },
            sort_requested,
            view,
        })
    }

    /// Console `GET /api/images` parameters (seed 001, plus seed 002's filters).
    pub fn from_console(pairs: &[(String, String)]) -> Result<ListQuery, ApiError> {
        let p = Params::new(pairs)?;
        let mut filters = Filters::read(&p, "chipType", "applicableScope")?;
        filters.publication = match p.get("status")? {
            Some(v) => Some(Publication::parse(v).ok_or_else(|| {
                ApiError::bad_param(
                    "status",
                    format!("'{v}' is not one of online, offline, pending"),
                )
            })?),
            None => None,
        };
        let number = p.number("pageNo", 1, MAX_PAGE)?.unwrap_or(1);
        let size = p
            .number("pageSize", 1, MAX_PAGE_SIZE)?
            .unwrap_or(DEFAULT_PAGE_SIZE);
        Ok(ListQuery {
            filters,
            page: Page { number, size },
            sort: Sort {
                key: SortKey::Id,
                descending: false,
            },
            sort_requested: false,
            view: View::Default,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_query;

    fn v1(q: &str) -> Result<ListQuery, ApiError> {
        ListQuery::from_v1(&parse_query(q))
    }

    fn message(r: Result<ListQuery, ApiError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.status, 400);
        e.message
    }

    #[test]
    fn defaults() {
        let q = v1("").unwrap();
        assert_eq!(
            q.page,
            Page {
                number: 1,
                size: 10
            }
        );
        assert_eq!(
            q.sort,
            Sort {
                key: SortKey::Id,
                descending: false
            }
        );
        assert_eq!(q.view, View::Default);
        assert_eq!(q.filters, Filters::default());
    }

    #[test]
    fn both_paging_styles() {
        assert_eq!(
            v1("page=3&page_size=20").unwrap().page,
            Page {
                number: 3,
                size: 20
            }
        );
        assert_eq!(v1("page_num=0").unwrap().page.number, 1);
        assert_eq!(v1("page_num=4").unwrap().page.number, 5);
        assert!(message(v1("page=1&page_num=0")).contains("page_num"));
    }

    #[test]
    fn bad_paging_names_the_parameter() {
        assert!(message(v1("page=-1")).contains("'page'"));
        assert!(message(v1("page=0")).contains("'page'"));
        assert!(message(v1("page=abc")).contains("'page'"));
        assert!(message(v1("page_size=100000")).contains("'page_size'"));
        assert!(message(v1("page_size=0")).contains("'page_size'"));
        assert!(message(v1("page_num=-1")).contains("'page_num'"));
        assert!(message(v1("page=99999999999999999999")).contains("'page'"));
    }

    #[test]
    fn sorting_is_whitelisted() {
        let q = v1("orderBy=createdTime&order=DESC").unwrap();
        assert_eq!(
            q.sort,
            Sort {
                key: SortKey::CreatedAt,
                descending: true
            }
        );
        assert!(message(v1("orderBy=password")).contains("'orderBy'"));
        assert!(message(v1("orderBy=name;DROP TABLE images")).contains("'orderBy'"));
        assert!(message(v1("order=sideways")).contains("'order'"));
    }

    #[test]
    fn views() {
        assert_eq!(v1("flat=true").unwrap().view, View::Flat);
        assert_eq!(v1("flat=false").unwrap().view, View::Grouped);
        assert!(message(v1("flat=2")).contains("'flat'"));
    }

    #[test]
    fn filters() {
        let q = v1("category=pytorch&framework=PyTorch&is_official=true&chip_type=gpu&applicable_scope=%E8%AE%AD%E7%BB%83&name=py&tag=2.0&ready=false&userName=bob&status=active&q=cuda").unwrap();
        let f = q.filters;
        assert_eq!(f.category.as_deref(), Some("pytorch"));
        assert_eq!(f.framework.as_deref(), Some("PyTorch"));
        assert_eq!(f.is_official, Some(true));
        assert_eq!(f.chip_type, Some(ChipType::Gpu));
        assert_eq!(f.applicable_scope.as_deref(), Some("训练"));
        assert_eq!(f.name.as_deref(), Some("py"));
        assert_eq!(f.tag.as_deref(), Some("2.0"));
        assert_eq!(f.ready, Some(false));
        assert_eq!(f.owner.as_deref(), Some("bob"));
        assert_eq!(f.status, Some(StatusFilter::Active));
        assert_eq!(f.text.as_deref(), Some("cuda"));
        assert_eq!(v1("owner=al").unwrap().filters.owner.as_deref(), Some("al"));
    }

    #[test]
    fn bad_filters_name_the_parameter() {
        assert!(message(v1("is_official=maybe")).contains("'is_official'"));
        assert!(message(v1("ready=yes")).contains("'ready'"));
        assert!(message(v1("chip_type=TPU")).contains("'chip_type'"));
        assert!(message(v1("status=gone")).contains("'status'"));
        assert!(message(v1("page=1&page=2")).contains("more than once"));
        assert!(message(v1(&format!("name={}", "x".repeat(300)))).contains("'name'"));
    }

    #[test]
    fn control_and_bidi_characters_are_refused() {
        for q in [
            "name=a%00b",
            "name=%1b",
            "keyword=x\u{202e}y",
            "sort=%7f",
            "name=\u{2066}",
        ] {
            let m = message(v1(q));
            assert!(m.contains("control or bidi"), "{q}: {m}");
        }
        assert!(forbidden_char("GPU 镜像 ordinary").is_none());
    }

    #[test]
    fn empty_values_mean_no_filter() {
        assert_eq!(v1("category=&name=&page=").unwrap(), v1("").unwrap());
    }

    #[test]
    fn console_parameters() {
        let q = ListQuery::from_console(&parse_query(
            "pageNo=2&pageSize=5&chipType=NPU&applicableScope=x&status=offline",
        ))
        .unwrap();
        assert_eq!(q.page, Page { number: 2, size: 5 });
        assert_eq!(q.filters.chip_type, Some(ChipType::Npu));
        assert_eq!(q.filters.publication, Some(Publication::Offline));
        assert!(ListQuery::from_console(&parse_query("pageNo=0")).is_err());
        assert!(ListQuery::from_console(&parse_query("status=active")).is_err());
    }

    #[test]
    fn pages() {
        let p = Page {
            number: 3,
            size: 10,
        };
        assert_eq!(p.offset(), 20);
        assert_eq!(p.total_pages(0), 0);
        assert_eq!(p.total_pages(21), 3);
    }
}
