//! Catalog reads end to end: the host serving the built catalog component over real HTTP,
//! on a real SQLite database holding the official images plus `fixtures::catalog()`.
//!
//! What each caller sees (ids): official 1–4 (public); alice's private 5, 6; bob's private 7;
//! public 8 (NPU), 9 (CPU), 12 (metacharacters in its name); offline 10; carol's importing 11.

use berth_domain::auth::Role;
use berth_tests::{AppOptions, TestApp, fixtures, token};
use serde_json::{Value, json};

fn app() -> TestApp {
    TestApp::spawn_with(AppOptions {
        prepare_db: Some(Box::new(|conn| {
            fixtures::insert(conn, &fixtures::catalog())
        })),
        ..Default::default()
    })
}

fn ids(items: &Value) -> Vec<i64> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {items}"))
        .iter()
        .map(|i| {
            let id = if i.get("image_id").is_some() {
                &i["image_id"]
            } else {
                &i["id"]
            };
            id.as_i64()
                .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
                .unwrap()
        })
        .collect()
}

/// `GET /api/v1/images?{query}` as `who`: the ids listed and the total.
fn list(app: &TestApp, who: &str, role: Role, query: &str) -> (Vec<i64>, i64) {
    let r = app.get(
        &format!("/api/v1/images?{query}"),
        Some(&app.token(who, role)),
    );
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    assert_eq!(r.body["code"], 0);
    let data = &r.body["data"];
    (
        ids(&data["items"]),
        data["pagination"]["total"].as_i64().unwrap(),
    )
}

fn alice(app: &TestApp, query: &str) -> Vec<i64> {
    let (ids, total) = list(app, "alice", Role::User, &format!("page_size=100&{query}"));
    assert_eq!(ids.len() as i64, total, "{query}");
    ids
}

#[test]
fn lists_the_seeded_official_images_in_seed_000s_envelope() {
    let app = TestApp::spawn();
    let r = app.as_user("dave").get("/api/v1/images");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body["code"], 0);
    assert_eq!(r.body["message"], "success");
    let items = r.body["data"]["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "ubuntu20-pytorch:2.0",
            "ubuntu20-tensorflow:2.12",
            "ubuntu22-cuda:12.0",
            "ubuntu20-jupyter:latest"
        ]
    );
    assert_eq!(
        r.body["data"]["pagination"],
        json!({"page": 1, "page_size": 10, "total": 4, "total_pages": 1})
    );
    let pytorch = &items[0];
    for (field, value) in [
        ("image_id", json!(1)),
        ("display_name", json!("Ubuntu 20.04 + PyTorch 2.0")),
        ("category", json!("pytorch")),
        ("framework", json!("pytorch")),
        ("framework_version", json!("2.0.0")),
        ("cuda_version", json!("11.8")),
        ("python_version", json!("3.10")),
        ("is_official", json!(true)),
        ("size", json!(8_589_934_592_i64)),
        ("status", json!("active")),
        (
            "registry_url",
            json!("harbor.remotegpu.com/library/ubuntu20-pytorch:2.0"),
        ),
        ("created_at", json!("2026-01-20T10:00:00Z")),
    ] {
        assert_eq!(pytorch[field], value, "{field}");
    }
    let sizes: Vec<i64> = items.iter().map(|i| i["size"].as_i64().unwrap()).collect();
    assert_eq!(
        sizes,
        [8 << 30, 7 << 30, 5 << 30, 6 << 30],
        "seed 002's sizes"
    );
}

#[test]
fn detail_in_both_apis_shows_the_same_record() {
    let app = TestApp::spawn();
    let user = app.as_user("dave");
    let v1 = user.get("/api/v1/images/1");
    assert_eq!(v1.status, 200, "{}", v1.text);
    let d = &v1.body["data"];
    assert_eq!(d["image_id"], 1);
    assert_eq!(d["name"], "ubuntu20-pytorch:2.0");
    assert_eq!(
        d["description"],
        "深度学习训练环境，包含 PyTorch 2.0、CUDA 11.8、Python 3.10"
    );
    assert_eq!(d["created_at"], "2026-01-20T10:00:00Z");
    assert_eq!(d["chip_type"], "GPU");
    assert!(v1.header("etag").is_some());

    let console = user.get("/api/images/1");
    assert_eq!(console.status, 200, "{}", console.text);
    assert_eq!(console.body["success"], true);
    let c = &console.body["data"];
    assert_eq!(c["id"], "1");
    assert_eq!(c["name"], d["display_name"], "seed 001: the display name");
    assert_eq!(c["imageId"], d["name"]);
    assert_eq!(c["imageAddress"], d["registry_url"]);
    assert_eq!(c["frameworks"], json!(["PyTorch"]));
    assert_eq!(c["chipType"], "GPU");
    assert_eq!(c["status"], "online");
    assert_eq!(c["presetCuda"], true);
    assert_eq!(c["applicableScopes"], json!(["开发机", "训练", "推理"]));
    assert_eq!(c["description"], d["description"]);
}

#[test]
fn private_images_are_visible_only_to_their_owner_and_admins() {
    let app = app();
    assert_eq!(alice(&app, ""), [1, 2, 3, 4, 5, 6, 8, 9, 12]);
    let (bob, _) = list(&app, "bob", Role::User, "page_size=100");
    assert_eq!(bob, [1, 2, 3, 4, 7, 8, 9, 12]);
    let (admin, total) = list(&app, "root", Role::Admin, "page_size=100");
    assert_eq!(admin, (1..=12).collect::<Vec<_>>());
    assert_eq!(total, 12);

    // Details and versions of someone else's private image do not reveal it exists.
    for path in [
        "/api/v1/images/7",
        "/api/images/7",
        "/api/images/7/versions",
        "/api/v1/images/10",
    ] {
        assert_eq!(app.as_user("alice").get(path).status, 404, "{path}");
        assert_eq!(app.as_admin().get(path).status, 200, "{path}");
    }
    assert_eq!(app.as_user("bob").get("/api/v1/images/7").status, 200);
}

#[test]
fn each_filter_alone() {
    let app = app();
    let cases: &[(&str, &[i64])] = &[
        ("category=pytorch", &[1]),
        ("category=custom", &[5, 6, 12]),
        ("framework=PyTorch", &[1, 5, 6]),
        ("is_official=true", &[1, 2, 3, 4]),
        ("is_official=false", &[5, 6, 8, 9, 12]),
        ("chip_type=NPU", &[8]),
        ("chip_type=cpu", &[9]),
        ("chip_type=GPU", &[1, 2, 3, 4, 5, 6, 12]),
        ("applicable_scope=训练", &[1, 2, 3, 5, 8]),
        ("applicable_scope=%E6%8E%A8%E7%90%86", &[1, 2, 8]),
        ("name=pytorch", &[1]),
        ("name=NLP", &[5, 6]),
        ("name=Ubuntu%2022", &[3]),
        ("tag=1.0", &[5]),
        ("ready=true", &[1, 2, 3, 4, 5, 6, 8, 9, 12]),
        ("ready=false", &[]),
        ("userName=alice", &[5, 6]),
        ("owner=alice", &[5, 6]),
        ("status=active", &[1, 2, 3, 4, 5, 6, 8, 9, 12]),
        ("status=importing", &[]),
        ("q=cuda", &[1, 2, 3, 4]),
    ];
    for (query, expected) in cases {
        assert_eq!(alice(&app, query), *expected, "{query}");
    }
    // What only an admin can see, through the filters that find it.
    let (ids, _) = list(&app, "root", Role::Admin, "status=importing");
    assert_eq!(ids, [11]);
    let (ids, _) = list(&app, "root", Role::Admin, "ready=false");
    assert_eq!(ids, [11]);
}

#[test]
fn filters_combine() {
    let app = app();
    assert_eq!(
        alice(
            &app,
            "framework=pytorch&chip_type=GPU&applicable_scope=训练"
        ),
        [1, 5]
    );
    assert_eq!(
        alice(&app, "is_official=false&chip_type=GPU&name=nlp&tag=1.1"),
        [6]
    );
    assert_eq!(
        alice(&app, "category=pytorch&is_official=false"),
        Vec::<i64>::new()
    );
}

#[test]
fn sql_metacharacters_in_filters_are_plain_text() {
    let app = app();
    for query in [
        "name=%27%20OR%201%3D1%20--",
        "category=x%27%3B%20DROP%20TABLE%20images%3B--",
        "framework=%22%29%20OR%20%28%221%22%3D%221",
        "tag=%5C",
        "q=%27%20OR%20%271%27%3D%271",
        "userName=%27%20OR%20owner%20IS%20NOT%20NULL%20--",
        "applicable_scope=%27%29%20OR%201%3D1--",
    ] {
        assert_eq!(alice(&app, query), Vec::<i64>::new(), "{query}");
    }
    // LIKE wildcards match themselves, not everything.
    assert_eq!(alice(&app, "name=%25"), [12]);
    assert_eq!(alice(&app, "name=_"), [12]);
    assert_eq!(alice(&app, "name=%5C"), [12]);
    assert_eq!(alice(&app, "name=%27quote"), [12]);
    assert_eq!(
        alice(&app, "q=%27"),
        [5, 12],
        "an apostrophe is just a character"
    );

    // And nothing was dropped.
    assert_eq!(alice(&app, "").len(), 9);
}

#[test]
fn both_paging_styles_including_out_of_range_pages() {
    let app = app();
    let (page2, total) = list(&app, "alice", Role::User, "page=2&page_size=2");
    assert_eq!((page2.clone(), total), (vec![3, 4], 9));
    let (page_num1, _) = list(&app, "alice", Role::User, "page_num=1&page_size=2");
    assert_eq!(page_num1, page2, "page_num is 0-based");
    let (first, _) = list(&app, "alice", Role::User, "page_num=0&page_size=2");
    assert_eq!(first, [1, 2]);
    let (last, _) = list(&app, "alice", Role::User, "page=5&page_size=2");
    assert_eq!(last, [12]);

    let r = app
        .as_user("alice")
        .get("/api/v1/images?page=7&page_size=2");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["items"], json!([]));
    assert_eq!(
        r.body["data"]["pagination"],
        json!({"page": 7, "page_size": 2, "total": 9, "total_pages": 5})
    );
    let r = app
        .as_user("alice")
        .get("/api/v1/images?flat=true&page_num=50");
    assert_eq!(r.body["data"], json!({"totalCount": 9, "images": []}));

    let console = app.as_user("alice").get("/api/images?pageNo=2&pageSize=4");
    assert_eq!(console.status, 200);
    assert_eq!(ids(&console.body["data"]["list"]), [5, 6, 8, 9]);
    assert_eq!(console.body["data"]["total"], 9);
    assert_eq!(console.body["data"]["pageNo"], 2);
    assert_eq!(console.body["data"]["pageSize"], 4);
    let beyond = app.as_user("alice").get("/api/images?pageNo=9");
    assert_eq!(beyond.body["data"]["list"], json!([]));
}

#[test]
fn sorts_ascending_and_descending_on_every_whitelisted_column() {
    let app = app();
    let token = app.token("root", Role::Admin);
    for key in [
        "id",
        "image_id",
        "name",
        "created_at",
        "createdAt",
        "createdTime",
        "updated_at",
        "updatedAt",
        "size",
        "category",
        "framework",
        "status",
    ] {
        let field = match key {
            "id" | "image_id" => "image_id",
            "createdAt" | "createdTime" => "created_at",
            "updatedAt" => "updated_at",
            // `status` sorts by availability; v1 items show seed 000's word for it.
            "status" => "availability",
            k => k,
        };
        for order in ["asc", "desc"] {
            let r = app.get(
                &format!("/api/v1/images?page_size=100&orderBy={key}&order={order}"),
                Some(&token),
            );
            assert_eq!(r.status, 200, "{key} {order}: {}", r.text);
            let items = r.body["data"]["items"].as_array().unwrap();
            assert_eq!(items.len(), 12);
            let rows: Vec<(Value, i64)> = items
                .iter()
                .map(|i| (i[field].clone(), i["image_id"].as_i64().unwrap()))
                .collect();
            let mut sorted = rows.clone();
            sorted.sort_by(|a, b| cmp_json(&a.0, &b.0).then(a.1.cmp(&b.1)));
            if order == "desc" {
                sorted.reverse();
            }
            assert_eq!(rows, sorted, "orderBy={key}&order={order}");
        }
    }
    let (by_size, _) = list(
        &app,
        "alice",
        Role::User,
        "orderBy=size&order=desc&page_size=1",
    );
    assert_eq!(by_size, [8], "the 9 GB image first");
}

/// SQL's order: NULL first, then numbers or text.
fn cmp_json(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Less,
        (_, Value::Null) => std::cmp::Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x.as_i64().cmp(&y.as_i64()),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => panic!("mixed types {a} {b}"),
    }
}

#[test]
fn flat_view_has_seed_003s_shape() {
    let app = app();
    let r = app
        .as_user("alice")
        .get("/api/v1/images?flat=true&page_size=3");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["totalCount"], 9);
    let images = r.body["data"]["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(
        images[0],
        json!({"id": 1, "tag": "ubuntu20-pytorch:2.0", "description": "深度学习训练环境，包含 PyTorch 2.0、CUDA 11.8、Python 3.10",
               "created_at": 1_768_903_200, "created_by": "admin"})
    );
}

#[test]
fn grouped_view_has_seed_003s_shape() {
    let app = app();
    let r = app
        .as_user("alice")
        .get("/api/v1/images?flat=false&page_size=100&orderBy=created_at&order=desc");
    assert_eq!(r.status, 200, "{}", r.text);
    let data = &r.body["data"];
    assert_eq!(data["totalCount"], 8, "repositories alice can see");
    let groups = data["images"].as_array().unwrap();
    let mut repos: Vec<&str> = groups.iter().map(|g| g["repo"].as_str().unwrap()).collect();
    // Repositories come newest first: by their newest tag, as orderBy asks.
    let newest: Vec<String> = groups
        .iter()
        .map(|g| {
            g["artifacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["createdTime"].as_str().unwrap().to_owned())
                .max()
                .unwrap()
        })
        .collect();
    assert!(
        newest.windows(2).all(|w| w[0] >= w[1]),
        "{repos:?} {newest:?}"
    );
    repos.sort();
    assert_eq!(
        repos,
        [
            "library/ascend-mindspore",
            "library/cpu-sklearn",
            "library/special",
            "library/ubuntu20-jupyter",
            "library/ubuntu20-pytorch",
            "library/ubuntu20-tensorflow",
            "library/ubuntu22-cuda",
            "users/alice-nlp"
        ]
    );
    let nlp = groups
        .iter()
        .find(|g| g["repo"] == "users/alice-nlp")
        .unwrap();
    assert_eq!(nlp["registryHost"], "harbor.remotegpu.com");
    let artifacts = nlp["artifacts"].as_array().unwrap();
    let tags: Vec<&str> = artifacts
        .iter()
        .map(|a| a["imageTag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["1.1", "1.0"], "artifacts follow the requested sort");
    let a = &artifacts[1];
    assert_eq!(a["id"], 5);
    assert_eq!(a["userName"], "alice");
    assert_eq!(a["status"], "ready");
    assert_eq!(a["size"], 1 << 30);
    assert_eq!(a["includeType"], "full");
    assert_eq!(a["createdTime"], "2026-02-01T00:00:00.000Z");
    for key in ["description", "arch", "os", "digest"] {
        assert!(a.get(key).is_some(), "{key}");
    }
    let page2 = app
        .as_user("alice")
        .get("/api/v1/images?flat=false&page=2&page_size=3");
    let repos: Vec<&str> = page2.body["data"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["repo"].as_str().unwrap())
        .collect();
    assert_eq!(
        repos,
        [
            "library/ubuntu20-jupyter",
            "library/ubuntu20-pytorch",
            "library/ubuntu20-tensorflow"
        ]
    );
}

#[test]
fn console_list_detail_and_versions_have_seed_001s_shapes() {
    let app = app();
    let alice = app.as_user("alice");
    let r = alice.get("/api/images");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], true);
    let data = &r.body["data"];
    assert_eq!(
        (
            data["total"].clone(),
            data["pageNo"].clone(),
            data["pageSize"].clone()
        ),
        (json!(9), json!(1), json!(10))
    );
    let first = &data["list"][0];
    for key in ["id", "name", "imageId", "frameworks", "chipType", "status"] {
        assert!(first.get(key).is_some(), "{key}");
    }
    assert_eq!(first["id"], "1");

    let filtered =
        alice.get("/api/images?chipType=NPU&applicableScope=推理&framework=mindspore&name=ascend");
    assert_eq!(ids(&filtered.body["data"]["list"]).len(), 1);
    assert_eq!(filtered.body["data"]["list"][0]["chipType"], "NPU");
    let official = alice.get("/api/images?is_official=true&category=tensorflow");
    assert_eq!(official.body["data"]["total"], 1);
    let offline = app.as_admin().get("/api/images?status=offline");
    assert_eq!(offline.body["data"]["list"][0]["name"], "retired-caffe:1.0");

    let versions = alice.get("/api/images/5/versions");
    assert_eq!(versions.status, 200, "{}", versions.text);
    assert_eq!(versions.body["data"]["total"], 2);
    let list = versions.body["data"]["list"].as_array().unwrap();
    assert_eq!(list[0]["version"], "1.1");
    assert_eq!(
        list[0]["imageAddress"],
        "harbor.remotegpu.com/users/alice-nlp:1.1"
    );
    assert_eq!(list[0]["size"], "3GB");
    assert_eq!(list[1]["version"], "1.0");
    assert_eq!(list[1]["createTime"], "2026-02-01T00:00:00Z");
    for key in ["pythonVersion", "cudaVersion", "description"] {
        assert!(list[0].get(key).is_some(), "{key}");
    }
}

#[test]
fn every_route_requires_a_valid_bearer_token() {
    let app = TestApp::spawn();
    let expired = token("alice", Role::User, -10);
    let forged = {
        let real = token("alice", Role::Admin, 3600);
        let mut parts: Vec<&str> = real.split('.').collect();
        parts[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        parts.join(".")
    };
    let other_secret = berth_domain::auth::issue_token(
        "not-the-secret",
        &berth_domain::auth::Claims {
            sub: "x".into(),
            role: Role::Admin,
            exp: i64::MAX / 2,
        },
    );
    for path in [
        "/api/v1/images",
        "/api/v1/images/1",
        "/api/images",
        "/api/images/1",
        "/api/images/1/versions",
        "/api/v1/images/1/importing-details",
    ] {
        let envelope_key = if path.starts_with("/api/images") {
            "success"
        } else {
            "code"
        };
        for (what, auth, needle) in [
            ("missing", None, "missing"),
            ("expired", Some(expired.as_str()), "expired"),
            ("forged", Some(forged.as_str()), "signature"),
            ("other secret", Some(other_secret.as_str()), "signature"),
            ("garbage", Some("not-a-jwt"), "well-formed"),
        ] {
            let r = app.get(path, auth);
            assert_eq!(r.status, 401, "{path} {what}: {}", r.text);
            assert!(
                r.body.get(envelope_key).is_some(),
                "{path} {what}: {}",
                r.text
            );
            let msg = r.body["message"].as_str().unwrap();
            assert!(msg.contains(needle), "{path} {what}: {msg}");
        }
    }
}

#[test]
fn bad_input_gets_a_400_naming_the_parameter() {
    let app = TestApp::spawn();
    let user = app.as_user("alice");
    for (path, param) in [
        ("/api/v1/images?page=-1", "page"),
        ("/api/v1/images?page=0", "page"),
        ("/api/v1/images?page_size=100000", "page_size"),
        ("/api/v1/images?page_size=abc", "page_size"),
        ("/api/v1/images?page_num=-3", "page_num"),
        ("/api/v1/images?orderBy=password", "orderBy"),
        ("/api/v1/images?order=up", "order"),
        ("/api/v1/images?is_official=maybe", "is_official"),
        ("/api/v1/images?flat=2", "flat"),
        ("/api/v1/images?ready=perhaps", "ready"),
        ("/api/v1/images?chip_type=TPU", "chip_type"),
        ("/api/v1/images?status=done", "status"),
        ("/api/v1/images/abc", "id"),
        ("/api/v1/images/-4", "id"),
        ("/api/v1/images/1.5", "id"),
        ("/api/images/abc", "id"),
        ("/api/images/abc/versions", "id"),
        ("/api/images?pageNo=0", "pageNo"),
        ("/api/images?pageSize=101", "pageSize"),
        ("/api/images?chipType=QPU", "chipType"),
    ] {
        let r = user.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        let msg = r.body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(&format!("'{param}'")), "{path}: {msg}");
        if path.starts_with("/api/v1") {
            assert_eq!(r.body["code"], 400, "{path}");
        } else {
            assert_eq!(r.body["success"], false, "{path}");
        }
    }
}

#[test]
fn unknown_routes_404_and_wrong_methods_405() {
    let app = TestApp::spawn();
    let user = app.as_user("alice");
    let missing = user.get("/api/v1/images/999");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["code"], 404);
    assert!(missing.body["message"].as_str().unwrap().contains("999"));
    let unknown = user.get("/api/v1/images/1/nonsense");
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.body["code"], 404);
    assert_eq!(user.get("/api/images/1/nonsense").body["success"], false);
    // Outside the API's routes the portal answers: 404 for an API path, the page at `/`.
    assert_eq!(user.get("/api/v2/whatever").status, 404);
    assert_eq!(user.get("/api/v2/whatever").body["code"], 404);
    assert_eq!(user.get("/").status, 200);

    let wrong = user.send("POST", "/api/v1/harbor/stats", None);
    assert_eq!(wrong.status, 405, "{}", wrong.text);
    assert_eq!(wrong.header("allow"), Some("GET"));
    assert_eq!(wrong.body["code"], 405);
}
