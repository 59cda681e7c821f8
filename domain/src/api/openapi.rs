//! The OpenAPI 3.1 document of berth's whole HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! Written in code so it shares the validation constants (page sizes, sort keys, the body
//! limit) with the handlers, and served from `docs/openapi.json`, that code's output, made
//! compact by build.rs: a static string is much smaller in the catalog component than the
//! code that builds it. A unit test fails when the file is not what [`document`] makes
//! (`BERTH_BLESS=1 cargo test -p berth-domain openapi` rewrites it); an end-to-end test
//! checks every route in spin.toml against it and every operation in it against the
//! running app.

use serde_json::{Map, Value, json};

use crate::query::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SortKey};
use crate::request::MAX_BODY_BYTES;

fn v1_envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["code", "message", "data"],
        "properties": {"code": {"type": "integer", "const": 0}, "message": {"type": "string"}, "data": data}
    })
}

fn console_envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"type": "boolean", "const": true}, "data": data, "message": {"type": "string"}}
    })
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}, "description": "Image id"})
}

/// An operation: summary, parameters, optional JSON body schema, success status and schema,
/// and the error statuses it can answer (each rendered in the API's error envelope).
struct Op {
    summary: &'static str,
    description: String,
    params: Vec<Value>,
    body: Option<Value>,
    ok: (u16, Value),
    errors: &'static [u16],
    security: &'static str,
}

impl Op {
    fn new(summary: &'static str, ok: (u16, Value)) -> Op {
        Op {
            summary,
            description: String::new(),
            params: vec![],
            body: None,
            ok,
            errors: &[400, 401],
            security: "bearer",
        }
    }
    fn describe(mut self, d: impl Into<String>) -> Op {
        self.description = d.into();
        self
    }
    fn params(mut self, p: Vec<Value>) -> Op {
        self.params = p;
        self
    }
    fn body(mut self, schema: Value) -> Op {
        self.body = Some(schema);
        self
    }
    fn errors(mut self, e: &'static [u16]) -> Op {
        self.errors = e;
        self
    }
    fn security(mut self, s: &'static str) -> Op {
        self.security = s;
        self
    }

    fn render(self, console: bool) -> Value {
        let error = if console { "ConsoleError" } else { "V1Error" };
        let mut responses = Map::new();
        responses.insert(
            self.ok.0.to_string(),
            json!({"description": "Success", "content": {"application/json": {"schema": self.ok.1}}}),
        );
        for status in self.errors {
            responses.insert(
                status.to_string(),
                json!({"description": error_description(*status), "content": {"application/json": {"schema": reference(error)}}}),
            );
        }
        let mut op = json!({
            "summary": self.summary,
            "parameters": self.params,
            "responses": responses,
            "security": [{self.security: []}],
        });
        if !self.description.is_empty() {
            op["description"] = json!(self.description);
        }
        if let Some(schema) = self.body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        op
    }
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid input; the message names the parameter or field",
        401 => "Missing, expired or forged credentials",
        403 => "Not allowed for this caller",
        404 => "Not found, or not visible to this caller",
        409 => "Conflicts with an existing image",
        412 => "If-Match names a stale revision",
        413 => "Body too large",
        415 => "Body is not application/json",
        501 => "Not implemented yet",
        _ => "Error",
    }
}

const WRITE_ERRORS: &[u16] = &[400, 401, 403, 404, 409, 412, 413, 415];

fn list_params() -> Vec<Value> {
    let sort_keys: Vec<&str> = SortKey::NAMES.iter().map(|(n, _)| *n).collect();
    vec![
        query(
            "page",
            json!({"type": "integer", "minimum": 1}),
            "Page number, 1-based (seed 000)",
        ),
        query(
            "page_num",
            json!({"type": "integer", "minimum": 0}),
            "Page number, 0-based (seed 003); not together with page",
        ),
        query(
            "page_size",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}),
            "Page size",
        ),
        query(
            "orderBy",
            json!({"type": "string", "enum": sort_keys, "default": "id"}),
            "Sort column (whitelist)",
        ),
        query(
            "order",
            json!({"type": "string", "enum": ["asc", "desc"], "default": "asc"}),
            "Sort direction",
        ),
        query(
            "flat",
            json!({"type": "boolean"}),
            "true: seed 003's flat list; false: grouped by repository (pages count repositories); absent: items + pagination",
        ),
        query(
            "category",
            json!({"type": "string"}),
            "Category, case-insensitive",
        ),
        query(
            "framework",
            json!({"type": "string"}),
            "Primary framework, case-insensitive",
        ),
        query(
            "is_official",
            json!({"type": "boolean"}),
            "Official images only, or custom only",
        ),
        query(
            "chip_type",
            json!({"type": "string", "enum": ["GPU", "CPU", "NPU"]}),
            "Chip type, case-insensitive",
        ),
        query(
            "applicable_scope",
            json!({"type": "string"}),
            "One applicable scope, e.g. 训练",
        ),
        query(
            "name",
            json!({"type": "string", "maxLength": 256}),
            "Fuzzy, case-insensitive match on name and display name",
        ),
        query(
            "q",
            json!({"type": "string", "maxLength": 256}),
            "Free text over name, display name, description, framework",
        ),
        query("tag", json!({"type": "string"}), "Exact tag"),
        query(
            "driver_version",
            json!({"type": "string", "pattern": "^[0-9]{2,4}(\\.[0-9]{1,4}){0,2}$", "examples": ["535.104.05"]}),
            "Only images whose CUDA release this NVIDIA driver runs (NVIDIA's toolkit/driver table); images without a known CUDA are left out",
        ),
        query(
            "max_severity",
            json!({"type": "string", "enum": ["none", "unknown", "low", "medium", "high", "critical"]}),
            "Only images whose last successful vulnerability scan found nothing above this severity",
        ),
        query(
            "ready",
            json!({"type": "boolean"}),
            "Only ready (true) or not ready (false) images",
        ),
        query(
            "userName",
            json!({"type": "string"}),
            "Owner (alias: owner)",
        ),
        query(
            "status",
            json!({"type": "string", "enum": ["importing", "ready", "failed", "building", "active"]}),
            "Availability; active = ready and online (seed 000)",
        ),
    ]
}

fn console_list_params() -> Vec<Value> {
    vec![
        query(
            "pageNo",
            json!({"type": "integer", "minimum": 1, "default": 1}),
            "Page number, 1-based",
        ),
        query(
            "pageSize",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}),
            "Page size",
        ),
        query("name", json!({"type": "string"}), "Fuzzy name match"),
        query("framework", json!({"type": "string"}), "Framework"),
        query(
            "chipType",
            json!({"type": "string", "enum": ["GPU", "CPU", "NPU"]}),
            "Chip type",
        ),
        query(
            "applicableScope",
            json!({"type": "string"}),
            "Applicable scope",
        ),
        query("category", json!({"type": "string"}), "Category (seed 002)"),
        query(
            "is_official",
            json!({"type": "boolean"}),
            "Official or custom (seed 002)",
        ),
        query(
            "status",
            json!({"type": "string", "enum": ["online", "offline", "pending"]}),
            "Publication status",
        ),
    ]
}

fn schemas() -> Value {
    let use_view = json!({
        "type": "object",
        "description": "What starting an environment from the image needs (seed 002 TC-03).",
        "properties": {"image_id": {"type": "integer"}, "name": {"type": "string"}, "pull_reference": {"type": "string"},
                       "digest": {"type": ["string", "null"]}, "platforms": {"type": "array", "items": {"type": "string", "description": "os/arch[/variant]"}},
                       "cuda_version": {"type": ["string", "null"]}, "min_driver": {"type": ["string", "null"], "description": "Minimum Linux NVIDIA driver of the CUDA release; null if unknown"},
                       "environment": {"type": "object", "properties": {"image": {"type": "string", "description": "Pinned by digest when known"},
                           "chip_type": {"type": "string"}, "platforms": {"type": "array", "items": {"type": "string"}}, "min_driver": {"type": ["string", "null"]}}}}
    });
    let text = json!({"type": ["string", "null"]});
    json!({
        "V1Error": {
            "type": "object", "required": ["code", "message"],
            "description": "code is the HTTP status; message says what was wrong",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {"type": "null"}}
        },
        "ConsoleError": {
            "type": "object", "required": ["success", "message"],
            "properties": {"success": {"type": "boolean", "const": false}, "message": {"type": "string"}, "data": {"type": "null"}}
        },
        "Image": {
            "type": "object",
            "description": "One registry/repository:tag. status is availability (importing, ready, failed, building); publication is online/offline/pending.",
            "properties": {
                "image_id": {"type": "integer"}, "name": {"type": "string"}, "display_name": text, "description": text,
                "category": text, "framework": text, "framework_version": text, "frameworks": {"type": "array", "items": {"type": "string"}},
                "cuda_version": text, "python_version": text, "chip_type": {"type": "string", "enum": ["GPU", "CPU", "NPU"]},
                "applicable_scopes": {"type": "array", "items": {"type": "string"}}, "is_official": {"type": "boolean"},
                "size": {"type": "integer", "description": "bytes"}, "status": {"type": "string"}, "publication": {"type": "string"},
                "visibility": {"type": "string", "enum": ["public", "private"]}, "owner": text, "registry_url": {"type": "string"},
                "tag": {"type": "string"}, "digest": text, "arch": text, "os": text,
                "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}
            }
        },
        "ImageDetail": {
            "allOf": [{"$ref": "#/components/schemas/Image"}, {"type": "object", "properties": {
                "platforms": {"type": "array", "items": {"type": "object", "properties": {
                    "digest": {"type": "string"}, "architecture": {"type": "string"}, "os": {"type": "string"}, "variant": text, "size": {"type": "integer"}}}},
                "registry": {"type": "string"}, "repository": {"type": "string"}, "origin": {"type": "string"},
                "revision": {"type": "integer", "description": "Also sent as the ETag; send it back in If-Match"},
                "created_by": text, "updated_by": text,
                "cudnn_version": text,
                "min_driver_version": {"type": ["string", "null"], "description": "Minimum Linux NVIDIA driver of the CUDA release; null without CUDA or for a release not in NVIDIA's table"},
                "vulnerabilities": {"oneOf": [{"$ref": "#/components/schemas/Vulnerabilities"}, {"type": "null"}]}}}]
        },
        "Vulnerabilities": {
            "type": "object",
            "description": "The latest Harbor (Trivy) scan of the image's artifact",
            "properties": {
                "status": {"type": "string", "description": "Harbor's scan_status: Success, Error, Running, …"},
                "severity": {"type": "string", "description": "Highest severity found: None, Unknown, Low, Medium, High, Critical"},
                "total": {"type": "integer"}, "fixable": {"type": "integer"},
                "critical": {"type": "integer"}, "high": {"type": "integer"}, "medium": {"type": "integer"},
                "low": {"type": "integer"}, "unknown": {"type": "integer"},
                "scannedAt": {"type": ["string", "null"], "format": "date-time"}
            }
        },
        "ImageWrite": {
            "type": "object", "additionalProperties": false,
            "description": "Writable fields (create needs name and registry_url). null or \"\" clears an optional text field. Users may create only private, non-official images.",
            "properties": {
                "name": {"type": "string", "maxLength": 256}, "display_name": text, "description": text, "category": text,
                "framework": text, "framework_version": text, "frameworks": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
                "cuda_version": text, "python_version": text, "chip_type": {"type": "string", "enum": ["GPU", "CPU", "NPU"]},
                "applicable_scopes": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
                "registry_url": {"type": "string", "description": "OCI reference registry/repository:tag[@digest]"},
                "is_official": {"type": "boolean"}, "visibility": {"type": "string", "enum": ["public", "private"]},
                "owner": {"type": "string"}, "publication": {"type": "string", "enum": ["online", "offline", "pending"]},
                "size": {"type": ["integer", "string"], "description": "bytes, or text like \"2.5GB\""},
                "digest": text, "arch": text, "os": text
            }
        },
        "ConsoleImage": {
            "type": "object",
            "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "imageId": {"type": "string", "description": "Same as name"},
                "frameworks": {"type": "array", "items": {"type": "string"}}, "chipType": {"type": "string"},
                "status": {"type": "string", "enum": ["online", "offline", "pending"]}, "description": text,
                "applicableScopes": {"type": "array", "items": {"type": "string"}}, "presetCuda": {"type": "boolean"},
                "imageAddress": {"type": "string"}, "category": text, "is_official": {"type": "boolean"}, "size": {"type": "integer"},
                "cudnnVersion": {"type": ["string", "null"], "description": "Detail only"},
                "minDriverVersion": {"type": ["string", "null"], "description": "Detail only: minimum Linux NVIDIA driver of the image's CUDA"},
                "vulnerabilities": {"description": "Detail only", "oneOf": [{"$ref": "#/components/schemas/Vulnerabilities"}, {"type": "null"}]}
            }
        },
        "ConsoleImageWrite": {
            "type": "object", "additionalProperties": false,
            "description": "name and imageId name the same image and must agree. Create needs a name and imageAddress.",
            "properties": {
                "name": {"type": "string"}, "imageId": {"type": "string"}, "displayName": text, "description": text, "category": text,
                "frameworks": {"type": "array", "items": {"type": "string"}}, "applicableScopes": {"type": "array", "items": {"type": "string"}},
                "chipType": {"type": "string", "enum": ["GPU", "CPU", "NPU"]}, "presetCuda": {"type": "boolean"},
                "cudaVersion": text, "pythonVersion": text, "imageAddress": {"type": "string"}, "is_official": {"type": "boolean"},
                "visibility": {"type": "string", "enum": ["public", "private"]}, "status": {"type": "string", "enum": ["online", "offline", "pending"]},
                "size": {"type": ["integer", "string"]}
            }
        },
        "ConsoleVersion": {
            "type": "object",
            "properties": {
                "id": {"type": "string"}, "version": {"type": "string"}, "imageAddress": {"type": "string"},
                "size": {"type": "string", "description": "e.g. 2.5GB"}, "pythonVersion": text, "cudaVersion": text,
                "description": text, "createTime": {"type": "string", "format": "date-time"}
            }
        },
        "BuildRequest": {
            "type": "object", "required": ["name"], "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "description": "Target name:tag; the image is named <owner>/<name>"},
                "mode": {"type": "string", "enum": ["dockerfile", "packages", "environment"], "default": "dockerfile"},
                "dockerfile": {"type": "string", "maxLength": 32768, "description": "dockerfile mode; every FROM must be a ready catalog image the caller may use, or on an allowed registry"},
                "base_image": {"type": "string", "description": "packages mode (required), or the Dockerfile's first FROM"},
                "packages": {"type": "object", "properties": {"pip": {"type": "array", "items": {"type": "string"}}, "apt": {"type": "array", "items": {"type": "string"}}}},
                "environment_id": {"type": "string", "description": "environment mode: the environment to save"},
                "description": {"type": "string"}
            }
        },
        "BuildStarted": {"type": "object", "properties": {"build_id": {"type": "string"}, "status": {"type": "string", "enum": ["building", "failed"]}}},
        "Build": {
            "type": "object",
            "properties": {
                "build_id": {"type": "string"}, "name": {"type": "string"}, "owner": {"type": "string"}, "mode": {"type": "string"},
                "status": {"type": "string", "enum": ["building", "running", "succeeded", "failed"]}, "message": text, "log_tail": text,
                "base_image": text, "description": text, "target": {"type": "string"}, "image_id": {"type": ["integer", "null"]},
                "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}
            }
        },
        "SourceRegistry": {
            "type": "object",
            "description": "username and has_password are shown to admins only; the password never",
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "host": {"type": "string"}, "type": {"type": "string"},
                           "url": {"type": "string"}, "username": text, "has_password": {"type": "boolean"},
                           "harbor_registry_id": {"type": ["integer", "null"]}, "created_at": {"type": "string"}, "updated_at": {"type": "string"}}
        },
        "SourceRegistryWrite": {
            "type": "object", "additionalProperties": false,
            "properties": {"name": {"type": "string"}, "host": {"type": "string", "description": "e.g. docker.io, nvcr.io, registry.example.com:5000"},
                           "type": {"type": "string", "enum": ["docker-hub", "docker-registry", "harbor", "quay", "github-ghcr", "google-gcr", "aws-ecr", "azure-acr", "gitlab", "jfrog-artifactory"]},
                           "url": {"type": "string"}, "username": {"type": "string"}, "password": {"type": "string", "writeOnly": true}}
        },
        "ImportAnswer": {
            "type": "object",
            "properties": {"state": {"type": "integer", "enum": [0, 1, 2], "description": "0 failed, 1 started, 2 already exists"},
                           "message": {"type": "string"}, "alreadyImageId": {"type": "integer"}, "image_id": {"type": ["integer", "null"]}}
        },
        "UseView": use_view,
        "ImportDetails": {
            "type": "object",
            "properties": {"status": {"type": "string", "description": "The image's availability"}, "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                           "layersDetail": {"type": "object", "additionalProperties": {"type": "object", "properties": {"status": {"type": "string"}, "progress": {"type": "integer"},
                               "digest": {"type": "string", "description": "Replication imports: the layer's digest"}, "size": {"type": "integer"},
                               "mediaType": {"type": "string"}, "platform": {"type": "string", "description": "os/arch[/variant]"}}}},
                           "message": text, "importState": {"type": ["string", "null"], "enum": ["pending", "running", "succeeded", "failed", null]}, "source": text}
        },
        "HarborStats": {
            "type": "object",
            "description": "Harbor counts repositories, not tags: totalImages is the number of repositories. Harbor shows totals and storage only to system admins; with a robot account berth reports the public projects and repositories and scope is public.",
            "properties": {"totalProjects": {"type": "integer"}, "totalImages": {"type": "integer", "description": "Repositories"},
                           "totalSize": {"type": "integer", "description": "Bytes of blob storage (0 unless berth's Harbor account is an admin)"},
                           "scope": {"type": "string", "enum": ["all", "public"]},
                           "project": {"type": "object", "description": "berth's own Harbor project, counted from berth's rows (ready imports and builds), whatever Harbor's account may see",
                               "properties": {"name": {"type": "string"}, "repositories": {"type": "integer"}, "images": {"type": "integer"}, "size": {"type": "integer", "description": "Bytes, the images' sizes summed"}}},
                           "harbor": {"type": "object", "properties": {"harborVersion": {"type": ["string", "null"], "description": "From Harbor's /systeminfo, as the sweep last read it"},
                               "eventsCarryExecutionId": {"type": ["boolean", "null"], "description": "Harbor v2.13 and later name the execution in REPLICATION events"}}}}
        },
        "FlatImage": {
            "type": "object",
            "properties": {"id": {"type": "integer"}, "tag": {"type": "string", "description": "The image name"}, "description": text,
                           "created_at": {"type": "integer", "description": "Unix seconds"}, "created_by": text}
        },
        "ImageGroup": {
            "type": "object",
            "properties": {"registryHost": {"type": "string"}, "repo": {"type": "string"}, "artifacts": {"type": "array", "items": {"type": "object", "properties": {
                "imageTag": {"type": "string"}, "description": text, "createdTime": {"type": "string", "format": "date-time"}, "userName": text,
                "status": {"type": "string"}, "id": {"type": "integer"}, "size": {"type": "integer"}, "arch": text, "os": text,
                "digest": text, "includeType": {"type": "string"}}}}}
        }
    })
}

/// The document as served: `docs/openapi.json` ([`document`]'s output) without its
/// whitespace.
pub const SERVED: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.min.json"));

/// The whole document.
pub fn document() -> Value {
    let image = reference("Image");
    let detail = reference("ImageDetail");
    let capped = json!({"type": "boolean", "description": "Present (true) when a name search's total stopped at 1,000 matches: there are more"});
    let page = json!({"type": "object", "properties": {
        "page": {"type": "integer"}, "page_size": {"type": "integer"}, "total": {"type": "integer"}, "total_pages": {"type": "integer"},
        "total_capped": capped}});
    let v1_list = v1_envelope(json!({"oneOf": [
        {"type": "object", "properties": {"items": {"type": "array", "items": image}, "pagination": page}},
        {"type": "object", "properties": {"totalCount": {"type": "integer"}, "totalCountCapped": capped, "images": {"type": "array", "items": reference("FlatImage")}}},
        {"type": "object", "properties": {"totalCount": {"type": "integer", "description": "Repositories"}, "totalCountCapped": capped, "images": {"type": "array", "items": reference("ImageGroup")}}}
    ]}));
    let created_v1 = v1_envelope(
        json!({"type": "object", "properties": {"image_id": {"type": "integer"}, "name": {"type": "string"}}}),
    );
    let created_console = console_envelope(
        json!({"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}),
    );
    let body_limit = format!("Bodies are JSON objects of at most {MAX_BODY_BYTES} bytes.");

    let v1 = |op: Op| op.render(false);
    let console = |op: Op| op.render(true);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "berth",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Image catalog and import service. Two APIs over one catalog: /api/v1 wraps every body in {code, message, data} (seed 003's bare bodies included, inside data); the console API /api/images uses {success, data, message}. Errors use the same envelopes with the HTTP status."
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (HS256: sub, role user|admin, exp)"},
                "harborWebhook": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "The auth_header configured on Harbor's webhook policy"},
                "workerToken": {"type": "http", "scheme": "bearer", "description": "The worker_token variable"},
                "runnerToken": {"type": "http", "scheme": "bearer", "description": "The runner_token variable"}
            },
            "schemas": schemas()
        },
        "paths": {
            "/api/v1/images": {
                "get": v1(Op::new("List images", (200, v1_list)).params(list_params())
                    .describe("Users see public online images and their own; admins see all.")),
                "post": v1(Op::new("Register an image", (201, created_v1)).body(reference("ImageWrite")).errors(WRITE_ERRORS).describe(body_limit))
            },
            "/api/v1/images/{id}": {
                "get": v1(Op::new("Image detail", (200, v1_envelope(detail.clone()))).params(vec![id_param()]).errors(&[400, 401, 404])),
                "put": v1(Op::new("Update an image (merges the fields given)", (200, v1_envelope(detail.clone()))).params(vec![id_param()])
                    .body(reference("ImageWrite")).errors(WRITE_ERRORS).describe("Send If-Match with the ETag to update only if unchanged.")),
                "patch": v1(Op::new("Update an image (merges the fields given)", (200, v1_envelope(detail))).params(vec![id_param()])
                    .body(reference("ImageWrite")).errors(WRITE_ERRORS)),
                "delete": v1(Op::new("Delete an image", (200, v1_envelope(json!({"type": "object", "properties": {"image_id": {"type": "integer"}}}))))
                    .params(vec![id_param()]).errors(&[400, 401, 403, 404, 409])
                    .describe("Deletes this tag only; other versions of the repository stay. 409 while a running build uses it as its base."))
            },
            "/api/v1/images/{id}/use": {"get": v1(Op::new("What an environment needs to use the image", (200, v1_envelope(reference("UseView"))))
                .params(vec![id_param()]).errors(&[400, 401, 404, 409]).describe("409 while the image is not ready."))},
            "/api/images/{id}/use": {"get": console(Op::new("What an environment needs to use the image", (200, console_envelope(reference("UseView"))))
                .params(vec![id_param()]).errors(&[400, 401, 404, 409]).describe("409 while the image is not ready."))},
            "/api/v1/images/{id}/importing-details": {"get": v1(Op::new("Import progress", (200, v1_envelope(reference("ImportDetails"))))
                .params(vec![id_param()]).errors(&[400, 401, 404])
                .describe("When nothing was heard from Harbor for import_reconcile_after_seconds, berth asks Harbor for the execution's state before answering."))},
            "/api/v1/images/{id}/importing:retry": {"put": v1(Op::new("Retry a failed import (owner or admin)", (200, v1_envelope(reference("ImportAnswer"))))
                .params(vec![id_param()]).errors(&[400, 401, 403, 404, 409, 502, 503]))},
            "/api/v1/harbor/stats": {"get": v1(Op::new("Harbor statistics", (200, v1_envelope(reference("HarborStats")))).errors(&[401, 502, 503])
                .describe("From Harbor's /statistics, cached for 30 seconds."))},
            "/api/v1/openapi.json": {"get": v1(Op::new("This document", (200, json!({"type": "object"}))).errors(&[401]))},
            "/api/v1/images:import": {"post": v1(Op::new("Import an image from an external registry into Harbor", (200, v1_envelope(reference("ImportAnswer"))))
                .body(json!({"type": "object", "required": ["source"], "additionalProperties": false, "properties": {
                    "source": {"type": "string", "description": "e.g. docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime"},
                    "sourceRegistry": {"type": "string", "description": "Must agree with the source's registry"}}}))
                .errors(&[400, 401, 403, 409, 413, 415, 502, 503])
                .describe("state 1: started (or already running: image_id names it); state 2: already imported (alreadyImageId); state 0: failed to start, with HTTP 502 and the reason. The source's registry must be in source_registries."))},
            "/api/v1/images:import/{name}/progress": {"put": v1(Op::new("Progress callback from a sync worker", (200, v1_envelope(json!({"type": "object"}))))
                .params(vec![json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "base64url of the destination reference (registry/repository:tag)"})])
                .body(json!({"type": "object", "description": "Layers {\"sha256:…\": {\"status\": \"downloading\", \"progress\": 45}} plus optional status (completed|failed), message, digest, size, arch, os",
                    "additionalProperties": {"type": "object", "properties": {"status": {"type": "string"}, "progress": {"type": "integer", "minimum": 0, "maximum": 100}}}}))
                .errors(&[400, 401, 404, 413, 415])
                .security("workerToken"))},
            "/api/v1/hooks/harbor": {"post": v1(Op::new("Harbor webhook receiver (REPLICATION, PUSH_ARTIFACT, DELETE_ARTIFACT)", (200, v1_envelope(json!({"type": "object"}))))
                .body(json!({"type": "object", "description": "Harbor's Default payload: {type, occur_at, operator, event_data}"}))
                .errors(&[400, 401, 503])
                .security("harborWebhook")
                .describe("Answers without calling Harbor (Harbor waits 3 s): it marks the import or build the event is about as due, matched by execution_id or, from Harbors before v2.13, by destination names; the sweep or the next read asks Harbor. Idempotent: duplicates and late events change nothing; completion is decided from the execution's own status."))},
            "/api/v1/internal/sweep": {"post": v1(Op::new("Reconcile unfinished imports and builds with Harbor (a scheduler calls it every sweep_interval_seconds)", (200, v1_envelope(json!({"type": "object", "properties": {
                    "imports": {"type": "object", "properties": {"reconciled": {"type": "integer"}, "finished": {"type": "integer"}, "skipped": {"type": "integer", "description": "held by another sweeper"}}},
                    "builds": {"type": "object", "properties": {"reconciled": {"type": "integer"}, "finished": {"type": "integer"}, "skipped": {"type": "integer"}}},
                    "harbor": {"type": "object", "properties": {"harborVersion": {"type": ["string", "null"]}, "eventsCarryExecutionId": {"type": ["boolean", "null"]}}}}}))))
                .errors(&[401, 503])
                .security("workerToken")
                .describe("At most 20 imports (least recently heard from, due ones first) and 20 builds per call, each leased while worked on, so concurrent sweepers never work the same one. berth up calls it on its own timer."))},
            "/api/v1/registries": {
                "get": v1(Op::new("Source registries (never their passwords)", (200, v1_envelope(json!({"type": "object", "properties": {
                    "total": {"type": "integer"}, "items": {"type": "array", "items": reference("SourceRegistry")}}})))).errors(&[401])),
                "post": v1(Op::new("Add a source registry (admin)", (201, v1_envelope(reference("SourceRegistry")))).body(reference("SourceRegistryWrite"))
                    .errors(&[400, 401, 403, 409, 413, 415, 502, 503])
                    .describe("Creates the Harbor registry endpoint imports from this host use, with these credentials."))
            },
            "/api/v1/registries/{id}": {
                "get": v1(Op::new("One source registry", (200, v1_envelope(reference("SourceRegistry")))).params(vec![id_param()]).errors(&[400, 401, 404])),
                "put": v1(Op::new("Change a source registry's credentials or endpoint (admin)", (200, v1_envelope(reference("SourceRegistry"))))
                    .params(vec![id_param()]).body(reference("SourceRegistryWrite")).errors(&[400, 401, 403, 404, 409, 413, 415, 502, 503])),
                "patch": v1(Op::new("Change a source registry (admin)", (200, v1_envelope(reference("SourceRegistry"))))
                    .params(vec![id_param()]).body(reference("SourceRegistryWrite")).errors(&[400, 401, 403, 404, 409, 413, 415, 502, 503])),
                "delete": v1(Op::new("Remove a source registry (admin)", (200, v1_envelope(json!({"type": "object"})))).params(vec![id_param()]).errors(&[400, 401, 403, 404]))
            },
            "/api/images": {
                "get": console(Op::new("List images (console)", (200, console_envelope(json!({"type": "object", "properties": {
                    "list": {"type": "array", "items": reference("ConsoleImage")}, "total": {"type": "integer"},
                    "totalCapped": {"type": "boolean", "description": "Present (true) when a name search's total stopped at 1,000 matches"},
                    "pageNo": {"type": "integer"}, "pageSize": {"type": "integer"}}})))).params(console_list_params())),
                "post": console(Op::new("Create an image (console)", (201, created_console.clone())).body(reference("ConsoleImageWrite")).errors(WRITE_ERRORS))
            },
            "/api/images/build": {"post": console(Op::new("Build a custom image (seed 002: the answer is bare, not enveloped)", (202, reference("BuildStarted")))
                .body(reference("BuildRequest")).errors(&[400, 401, 409, 413, 415, 502, 503]))},
            "/api/v1/images:build": {"post": v1(Op::new("Build a custom image", (202, v1_envelope(reference("BuildStarted"))))
                .body(reference("BuildRequest")).errors(&[400, 401, 409, 413, 415, 502, 503])
                .describe("Validated before anything is dispatched; the runner receives a job signed with HMAC-SHA256 (X-Berth-Signature) and Harbor's push of the target completes it."))},
            "/api/v1/builds": {"get": v1(Op::new("The caller's builds, newest first", (200, v1_envelope(json!({"type": "object", "properties": {
                "total": {"type": "integer"}, "builds": {"type": "array", "items": reference("Build")}}})))).errors(&[401]))},
            "/api/v1/builds/{build_id}": {"get": v1(Op::new("One build (its owner's or an admin's)", (200, v1_envelope(reference("Build"))))
                .params(vec![json!({"name": "build_id", "in": "path", "required": true, "schema": {"type": "string"}})]).errors(&[401, 404]))},
            "/api/v1/builds/{build_id}/status": {"put": v1(Op::new("Runner status callback", (200, v1_envelope(json!({"type": "object"}))))
                .params(vec![json!({"name": "build_id", "in": "path", "required": true, "schema": {"type": "string"}})])
                .body(json!({"type": "object", "required": ["status"], "additionalProperties": false, "properties": {
                    "status": {"type": "string", "enum": ["running", "failed"]}, "message": {"type": "string"}, "log_tail": {"type": "string"}}}))
                .errors(&[400, 401, 404, 413, 415]).security("runnerToken"))},
            "/api/images/{id}": {
                "get": console(Op::new("Image detail (console)", (200, console_envelope(reference("ConsoleImage")))).params(vec![id_param()]).errors(&[400, 401, 404])),
                "put": console(Op::new("Update an image (console)", (200, created_console)).params(vec![id_param()]).body(reference("ConsoleImageWrite")).errors(WRITE_ERRORS)),
                "delete": console(Op::new("Delete an image (console)", (200, console_envelope(json!({"type": "null"})))).params(vec![id_param()]).errors(&[400, 401, 403, 404, 409]))
            },
            "/api/images/{id}/status": {
                "put": console(Op::new("Set publication status", (200, console_envelope(json!({"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"}}}))))
                    .params(vec![id_param()])
                    .body(json!({"type": "object", "required": ["status"], "additionalProperties": false, "properties": {"status": {"type": "string", "enum": ["online", "offline", "pending"]}}}))
                    .errors(WRITE_ERRORS))
            },
            "/api/images/{id}/versions": {
                "get": console(Op::new("Versions: the tags of the image's repository", (200, console_envelope(json!({"type": "object", "properties": {
                    "list": {"type": "array", "items": reference("ConsoleVersion")}, "total": {"type": "integer"}}})))).params(vec![id_param()]).errors(&[400, 401, 404])),
                "post": console(Op::new("Add a version (another tag of the repository)", (201, console_envelope(json!({"type": "object", "properties": {
                    "version": {"type": "string"}, "imageAddress": {"type": "string"}}})))).params(vec![id_param()])
                    .body(json!({"type": "object", "required": ["version"], "additionalProperties": false, "properties": {
                        "version": {"type": "string"}, "imageAddress": {"type": "string"}, "size": {"type": ["integer", "string"]},
                        "pythonVersion": {"type": "string"}, "cudaVersion": {"type": "string"}, "description": {"type": "string"},
                        "createTime": {"type": "string", "description": "Accepted and ignored: berth records its own time"}}}))
                    .errors(WRITE_ERRORS))
            }
        }
    });
    // Added apart: one more path in the literal above passes json!'s recursion limit.
    doc["paths"]["/api/v1/builds/{build_id}/cancel"] = json!({"post": v1(Op::new(
        "Cancel a build (its owner's or an admin's): it fails as cancelled and the runner stops it",
        (200, v1_envelope(reference("Build"))))
        .params(vec![json!({"name": "build_id", "in": "path", "required": true, "schema": {"type": "string"}})])
        .errors(&[401, 404, 409]))});
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = include_str!("../../../docs/openapi.json");

    /// The file is pretty-printed so that a change to the API shows as a readable diff.
    #[test]
    fn docs_openapi_json_is_the_generated_document() {
        let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("BERTH_BLESS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
            std::fs::write(path, &generated).unwrap();
            return;
        }
        assert!(
            FILE == generated,
            "docs/openapi.json is not what openapi::document() makes: \
             run `BERTH_BLESS=1 cargo test -p berth-domain openapi` and commit the file"
        );
    }

    #[test]
    fn the_served_document_is_the_file_without_whitespace() {
        let served: Value = serde_json::from_str(SERVED).unwrap();
        assert_eq!(served, serde_json::from_str::<Value>(FILE).unwrap());
        assert!(!SERVED.contains("\n  "), "served compact");
        assert!(SERVED.len() < FILE.len() / 2);
    }
}
