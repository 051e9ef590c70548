//! `[openapi]` through the real host and echo plugin (issue 13): the document the host writes
//! from the routes' schemas and metadata (config routes and routes the plugin registers),
//! checked member by member and by a real OpenAPI 3.1 validator (`openapi-spec-validator`
//! from the project's .venv); the docs page and its embedded assets; the start-up errors.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use spikard_tests::{echo_plugin_block, expect_startup_error, repo_root, Server, TempDir};

/// Runs `openapi-spec-validator` on `document` and panics with its report unless it is a
/// valid OpenAPI document.
fn assert_valid(document: &Value) {
    if let Err(report) = validate(document) {
        panic!(
            "invalid OpenAPI document:\n{report}\n{}",
            serde_json::to_string_pretty(document).unwrap()
        );
    }
}

/// The validator's verdict on `document`: `Err` with its output when it refuses it.
fn validate(document: &Value) -> Result<(), String> {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: create it with `python3 -m venv .venv && .venv/bin/pip install -r plugins/python/requirements-dev.txt`",
        python.display()
    );
    let dir = TempDir::new("openapi-doc");
    let file = dir.write("openapi.json", &document.to_string());
    let output = Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run openapi_spec_validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("No module named"),
        "openapi-spec-validator is not installed in .venv: run `.venv/bin/pip install -r plugins/python/requirements-dev.txt`\n{text}"
    );
    if output.status.success() {
        Ok(())
    } else {
        Err(text)
    }
}

/// The document the server answers, after checking how it is answered.
fn fetch_document(server: &Server) -> Value {
    let response = server.get("/openapi.json");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    response.json()
}

/// Routes the echo plugin registers itself, with every kind of metadata, and config routes
/// with every kind of parameter, body and response.
const EVERYTHING: &str = r##"
[[plugins.settings.register]]
method = "GET"
path = "/reg/users/{user_id}"
handler = "echo"
schema = '''{
  "path": {"type": "object", "properties": {"user_id": {"type": "integer", "minimum": 1}}, "required": ["user_id"]},
  "response": {"$ref": "#/$defs/User", "$defs": {"User": {"type": "object", "properties": {"name": {"type": "string"}}}}},
  "openapi": {"summary": "Read a user", "tags": ["users"], "operationId": "read_user"},
  "info": {"title": "Registered Title", "version": "9.9.9", "description": "From the plugin"}
}'''

[[plugins.settings.register]]
method = "POST"
path = "/reg/users"
handler = "echo"
schema = '''{
  "body": {"$ref": "#/$defs/User", "$defs": {"User": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}},
  "openapi": {"status": 201, "deprecated": true, "body_media_types": ["application/json", "application/x-www-form-urlencoded"],
              "responses": {"409": {"description": "Already there"}}},
  "info": {"title": "Another Title"}
}'''

[[plugins.settings.register]]
method = "GET"
path = "/reg/hidden"
handler = "echo"
schema = '{"openapi": {"include": false}}'

[[routes]]
method = "GET"
path = "/items/{item_id}"
plugin = "echo"
handler = "echo"
openapi = { summary = "Read an item", description = "One item, by id.", tags = ["items"] }

[routes.params.path]
type = "object"
properties = { item_id = { type = "integer", minimum = 1, description = "The item's id", examples = [7] } }
required = ["item_id"]

[routes.params.query]
type = "object"
properties = { q = { type = "string", minLength = 1, deprecated = true }, limit = { type = "integer", default = 10, maximum = 100 } }
required = ["q"]

[routes.params.headers]
type = "object"
properties = { x-token = { type = "string", description = "A token" } }
required = ["x-token"]

[routes.params.cookies]
type = "object"
properties = { session = { type = "string", example = "abc" } }

[[routes]]
method = "POST"
path = "/items"
plugin = "echo"
handler = "echo"
response = { type = "object", properties = { id = { type = "integer" } }, required = ["id"] }
openapi = { status = 201, operationId = "create_item", body_media_types = ["multipart/form-data"], responses = { "201" = { description = "Created it" }, "404" = { description = "No such shelf" } } }

[routes.body]
type = "object"
properties = { name = { type = "string" }, photo = { type = "string", format = "binary" } }
required = ["name"]

[[routes]]
method = "DELETE"
path = "/items/{item_id}"
plugin = "echo"
handler = "respond"
settings = { status = 204 }
openapi = { status = 204 }

[[routes]]
method = "GET"
path = "/files/{*rest}"
plugin = "echo"
handler = "echo"

[[routes]]
method = "PUT"
path = "/upload"
plugin = "echo"
handler = "upload"
stream_body = true

[[routes]]
method = "GET"
path = "/"
plugin = "echo"
handler = "respond"
"##;

fn everything_config(openapi: &str) -> String {
    format!(
        "[openapi]\n{openapi}\n\n{}{EVERYTHING}",
        echo_plugin_block()
    )
}

#[test]
fn the_document_describes_every_kind_of_parameter_body_response_and_metadata() {
    let server = Server::start(&everything_config("enabled = true\nversion = \"2.0\""));
    let doc = fetch_document(&server);
    assert_valid(&doc);
    assert_eq!(doc["openapi"], "3.1.0");
    // The first registered `info` wins; the config's own `version` overrides it.
    assert_eq!(
        doc["info"],
        json!({"title": "Registered Title", "version": "2.0", "description": "From the plugin"})
    );
    assert!(server
        .log()
        .contains("declares an `info` different from the first route's"));

    let paths = doc["paths"].as_object().unwrap();
    let mut keys: Vec<&str> = paths.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "/",
            "/files/{rest}",
            "/items",
            "/items/{item_id}",
            "/reg/users",
            "/reg/users/{user_id}",
            "/upload"
        ],
        "include = false hides /reg/hidden; the catch-all is {{rest}}"
    );

    let read = &doc["paths"]["/items/{item_id}"]["get"];
    assert_eq!(read["operationId"], "get_items_item_id");
    assert_eq!(read["summary"], "Read an item");
    assert_eq!(read["description"], "One item, by id.");
    assert_eq!(read["tags"], json!(["items"]));
    let params: Vec<(String, String, bool)> = read["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["in"].as_str().unwrap().to_owned(),
                p["required"].as_bool().unwrap(),
            )
        })
        .collect();
    // Template parameters first, then each source's properties in the schema's order (a
    // TOML inline table's keys are sorted).
    let expected = [
        ("item_id", "path", true),
        ("limit", "query", false),
        ("q", "query", true),
        ("x-token", "header", true),
        ("session", "cookie", false),
    ]
    .map(|(n, i, r)| (n.to_owned(), i.to_owned(), r));
    assert_eq!(params, expected);
    let item_id = &read["parameters"][0];
    assert_eq!(item_id["description"], "The item's id");
    assert_eq!(item_id["examples"]["example1"]["value"], 7);
    assert_eq!(item_id["schema"]["minimum"], 1);
    assert_eq!(read["parameters"][2]["deprecated"], true);
    assert_eq!(read["parameters"][3]["description"], "A token");
    assert_eq!(read["parameters"][4]["example"], "abc");
    let ok = &read["responses"]["200"];
    assert_eq!(ok["content"]["application/json"]["schema"], json!({}));
    let invalid = &read["responses"]["422"]["content"]["application/problem+json"]["schema"];
    assert_eq!(
        invalid["$ref"],
        "#/components/schemas/ValidationProblemDetails"
    );
    assert_eq!(
        read["responses"]["4XX"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/ProblemDetails"
    );
    let validation = &doc["components"]["schemas"]["ValidationProblemDetails"];
    assert_eq!(
        validation["properties"]["errors"]["items"]["$ref"],
        "#/components/schemas/ValidationError"
    );

    let create = &doc["paths"]["/items"]["post"];
    assert_eq!(create["operationId"], "create_item");
    let body = &create["requestBody"];
    assert_eq!(body["required"], true);
    assert_eq!(
        body["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["multipart/form-data"]
    );
    assert_eq!(
        body["content"]["multipart/form-data"]["schema"]["required"],
        json!(["name"])
    );
    let created = &create["responses"]["201"];
    assert_eq!(created["description"], "Created it");
    assert_eq!(
        created["content"]["application/json"]["schema"]["required"],
        json!(["id"])
    );
    assert!(create["responses"].get("200").is_none());
    assert_eq!(create["responses"]["404"]["description"], "No such shelf");

    let delete = &doc["paths"]["/items/{item_id}"]["delete"];
    assert_eq!(
        delete["responses"]["204"],
        json!({"description": "No Content"})
    );
    assert!(
        delete["responses"].get("422").is_none(),
        "no schema, nothing validated"
    );
    assert_eq!(
        delete["parameters"][0],
        json!({"name": "item_id", "in": "path", "required": true, "schema": {"type": "string"}})
    );

    let files = &doc["paths"]["/files/{rest}"]["get"];
    assert_eq!(files["parameters"][0]["name"], "rest");
    assert_eq!(doc["paths"]["/"]["get"]["operationId"], "get_root");
    let upload = &doc["paths"]["/upload"]["put"];
    assert!(upload["requestBody"]["content"]["application/octet-stream"].is_object());

    let user = &doc["paths"]["/reg/users/{user_id}"]["get"];
    assert_eq!(user["operationId"], "read_user");
    assert_eq!(
        user["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/User"
    );
    let new_user = &doc["paths"]["/reg/users"]["post"];
    assert_eq!(new_user["deprecated"], true);
    assert_eq!(
        new_user["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["application/json", "application/x-www-form-urlencoded"]
    );
    // The two `User` models differ: the second is suffixed.
    assert_eq!(
        new_user["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/User_2"
    );
    assert_eq!(new_user["responses"]["201"]["description"], "Created");
    assert_eq!(new_user["responses"]["409"]["description"], "Already there");
    assert_eq!(
        doc["components"]["schemas"]["User_2"]["required"],
        json!(["name"])
    );

    // The registered route still serves (handler ids line up with the config's routes).
    let echoed = server.get("/reg/users/5").json();
    assert_eq!(echoed["params"]["path"]["user_id"], 5);
    assert_eq!(
        server.get("/items/3?q=x").status,
        422,
        "x-token is required"
    );
}

#[test]
fn the_document_is_cached_by_etag_and_head_works() {
    let server = Server::start(&everything_config("enabled = true"));
    let first = server.get("/openapi.json");
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    let again = server.request("GET", "/openapi.json", &[("if-none-match", &etag)], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let head = server.request("HEAD", "/openapi.json", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        server.request("POST", "/openapi.json", &[], b"").status,
        405
    );
}

#[test]
fn the_docs_page_and_its_embedded_assets() {
    let server = Server::start(&everything_config("enabled = true\ntitle = \"Shop <API>\""));
    let page = server.get("/docs");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page
        .header("content-security-policy")
        .expect("the page's own CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text();
    assert!(
        html.contains("<title>Shop &lt;API&gt; - Swagger UI</title>"),
        "{html}"
    );
    assert!(html.contains(r#"data-url="openapi.json""#), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN: {html}"
    );
    let assets: Vec<String> = html
        .split(['"'])
        .filter(|s| s.starts_with("docs/"))
        .map(|s| format!("/{s}"))
        .collect();
    assert_eq!(assets.len(), 4, "{html}");
    let vendored = repo_root().join("host/assets/swagger-ui-5.35.0");
    for asset in &assets {
        let response = server.get(asset);
        assert_eq!(response.status, 200, "{asset}");
        assert_eq!(
            response.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{asset}"
        );
        let expected_type = match Path::new(asset).extension().and_then(|e| e.to_str()) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            _ => "image/png",
        };
        assert_eq!(
            response.header("content-type"),
            Some(expected_type),
            "{asset}"
        );
        let file = vendored.join(Path::new(asset).file_name().unwrap());
        if file.exists() {
            assert_eq!(
                response.body,
                std::fs::read(&file).unwrap(),
                "{asset} is the vendored file"
            );
        }
    }
    assert!(assets
        .iter()
        .any(|a| a.ends_with("/swagger-ui-5.35.0/swagger-ui-bundle.js")));
    let etag = server.get(&assets[0]).header("etag").unwrap().to_owned();
    assert_eq!(
        server
            .request("GET", &assets[0], &[("if-none-match", &etag)], b"")
            .status,
        304
    );
}

#[test]
fn off_by_default_and_docs_path_false() {
    let server = Server::start(&format!("{}{EVERYTHING}", echo_plugin_block()));
    for path in ["/openapi.json", "/docs"] {
        let response = server.get(path);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json")
        );
    }
    let server = Server::start(&everything_config(
        "enabled = true\npath = \"/api/schema.json\"\ndocs_path = false",
    ));
    assert_eq!(server.get("/api/schema.json").status, 200);
    assert_eq!(server.get("/openapi.json").status, 404);
    assert_eq!(server.get("/docs").status, 404);
}

#[test]
fn defs_are_hoisted_once_and_a_name_collision_is_suffixed() {
    let register = |path: &str, schema: &str| {
        format!("[[plugins.settings.register]]\nmethod = \"POST\"\npath = \"{path}\"\nhandler = \"echo\"\nschema = '''{schema}'''\n")
    };
    let tag = r##"{"type": "object", "properties": {"label": {"type": "string"}}}"##;
    let item_a = r##"{"type": "object", "properties": {"tag": {"$ref": "#/$defs/Tag"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Item"}}}}"##;
    let body_a = format!(
        r##"{{"body": {{"$ref": "#/$defs/Item", "$defs": {{"Item": {item_a}, "Tag": {tag}}}}}, "response": {{"$ref": "#/$defs/Tag", "$defs": {{"Tag": {tag}}}}}}}"##
    );
    let body_b = r##"{"body": {"type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}, "$defs": {"Item": {"type": "object", "properties": {"sku": {"type": "string"}}}}}}"##;
    let config = format!(
        "[openapi]\nenabled = true\n\n{}{}{}{}",
        echo_plugin_block(),
        register("/a", &body_a),
        register("/b", body_b),
        register("/c", &body_a),
    );
    let server = Server::start(&config);
    let doc = fetch_document(&server);
    assert_valid(&doc);
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let models: Vec<&str> = schemas
        .keys()
        .map(String::as_str)
        .filter(|k| {
            ![
                "ProblemDetails",
                "ValidationError",
                "ValidationProblemDetails",
            ]
            .contains(k)
        })
        .collect();
    assert_eq!(models, ["Item", "Tag", "Item_2"]);
    assert_eq!(
        schemas["Item"]["properties"]["tag"]["$ref"],
        "#/components/schemas/Tag"
    );
    assert_eq!(
        schemas["Item"]["properties"]["children"]["items"]["$ref"],
        "#/components/schemas/Item"
    );
    assert_eq!(schemas["Item_2"]["properties"]["sku"]["type"], "string");
    let body = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    assert_eq!(body("/a"), json!({"$ref": "#/components/schemas/Item"}));
    assert_eq!(
        body("/c"),
        json!({"$ref": "#/components/schemas/Item"}),
        "the same model again is reused"
    );
    assert_eq!(
        body("/b")["properties"]["item"]["$ref"],
        "#/components/schemas/Item_2"
    );
    assert_eq!(
        doc["paths"]["/a"]["post"]["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/Tag"})
    );
    let text = doc.to_string();
    assert!(!text.contains("$defs"), "every $defs was hoisted: {text}");
}

#[test]
fn auth_policies_become_security_schemes() {
    let config = format!(
        r#"[openapi]
enabled = true

[server.auth.api_key]
keys = ["k1"]
query = "api_key"

{}
[[routes]]
method = "GET"
path = "/secret"
plugin = "echo"
handler = "echo"

[[routes]]
method = "GET"
path = "/public"
plugin = "echo"
handler = "echo"
auth = false

[[routes]]
method = "GET"
path = "/token"
plugin = "echo"
handler = "echo"
auth = {{ jwt = {{ algorithm = "HS256", secret = "a-test-secret-of-at-least-32-bytes!" }} }}
"#,
        echo_plugin_block()
    );
    let server = Server::start(&config);
    let doc = fetch_document(&server);
    assert_valid(&doc);
    let security = |path: &str| doc["paths"][path]["get"].get("security").cloned();
    assert_eq!(
        security("/secret"),
        Some(json!([{"APIKeyHeader": []}, {"APIKeyQuery": []}]))
    );
    assert_eq!(security("/public"), None);
    assert_eq!(security("/token"), Some(json!([{"HTTPBearer": []}])));
    assert_eq!(
        doc["components"]["securitySchemes"],
        json!({
            "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "APIKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
            "HTTPBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        })
    );
    // The routes are guarded; the document and docs page are the host's, not behind them.
    assert_eq!(server.get("/secret").status, 401);
    assert_eq!(server.get("/secret?api_key=k1").status, 200);
    assert_eq!(server.get("/docs").status, 200);
}

#[test]
fn the_validator_refuses_an_invalid_document() {
    // The check above is only worth something if the validator says no to a broken
    // document: a path parameter the template does not have.
    let server = Server::start(&everything_config("enabled = true"));
    let mut doc = fetch_document(&server);
    assert_valid(&doc);
    doc["paths"]["/items"]["post"]["parameters"] =
        json!([{"name": "nope", "in": "path", "required": false, "schema": {}}]);
    assert!(
        validate(&doc).is_err(),
        "the validator accepted a broken document"
    );
    let mut doc = fetch_document(&server);
    doc.as_object_mut().unwrap().remove("info");
    assert!(validate(&doc).is_err());
}

#[test]
fn a_route_at_a_host_answered_path_is_a_startup_error_naming_both() {
    let route = |method: &str, path: &str| {
        format!("[[routes]]\nmethod = \"{method}\"\npath = \"{path}\"\nplugin = \"echo\"\nhandler = \"echo\"\n")
    };
    // A config route: caught while reading the config, with its line.
    let line = expect_startup_error(
        &format!("[openapi]\nenabled = true\n{}{}", echo_plugin_block(), route("GET", "/openapi.json")),
        &["spikard.toml:1:1: openapi.path: `/openapi.json` is also matched by routes[0] GET /openapi.json (line"],
    );
    assert!(line.contains("choose a path no route serves"), "{line}");
    expect_startup_error(
        &format!("[openapi]\nenabled = true\ndocs_path = \"/api/docs\"\n{}{}", echo_plugin_block(), route("POST", "/api/{name}")),
        &["spikard.toml:3:13: openapi.docs_path: `/api/docs` is also matched by routes[0] POST /api/{name}"],
    );
    // A route the plugin registers: caught when routes are built, naming both.
    let registered = "[[plugins.settings.register]]\nmethod = \"GET\"\npath = \"/{*rest}\"\nhandler = \"echo\"\n";
    expect_startup_error(
        &format!(
            "[openapi]\nenabled = true\n{}{registered}",
            echo_plugin_block()
        ),
        &[
            "route GET /{*rest} registered by plugin `echo`",
            "is at a path the host answers itself",
            "[openapi.path] (",
            "spikard.toml:1:1)",
        ],
    );
    let registered = "[[plugins.settings.register]]\nmethod = \"GET\"\npath = \"/docs/{file}/{name}\"\nhandler = \"echo\"\n";
    expect_startup_error(
        &format!(
            "[openapi]\nenabled = true\n{}{registered}",
            echo_plugin_block()
        ),
        &[
            "route GET /docs/{file}/{name} registered by plugin `echo`",
            "`/docs/swagger-ui-5.35.0/",
            "openapi.docs_path",
        ],
    );
    // The same routes are fine while [openapi] is off.
    let run = spikard_tests::run_host(
        &format!("{}{}", echo_plugin_block(), route("GET", "/openapi.json")),
        &["--check"],
    );
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
}

#[test]
fn metadata_and_config_mistakes_are_startup_errors() {
    let route =
        "[[routes]]\nmethod = \"GET\"\npath = \"/x\"\nplugin = \"echo\"\nhandler = \"echo\"\n";
    expect_startup_error(
        &format!("{}{route}openapi = {{ status = \"ok\" }}\n", echo_plugin_block()),
        &["spikard.toml:9:11: routes[0].openapi: openapi.status must be an HTTP status code from 100 to 599"],
    );
    expect_startup_error(
        &format!(
            "{}{route}openapi = {{ sumary = \"x\" }}\n",
            echo_plugin_block()
        ),
        &["routes[0].openapi: unknown openapi key `sumary`; use summary, description"],
    );
    let registered = |schema: &str| {
        format!("{}[[plugins.settings.register]]\nmethod = \"GET\"\npath = \"/r\"\nhandler = \"echo\"\nschema = '{schema}'\n", echo_plugin_block())
    };
    expect_startup_error(
        &registered(r#"{"openapi": {"tags": "users"}}"#),
        &["route GET /r registered by plugin `echo`: openapi.tags must be a list of strings"],
    );
    expect_startup_error(
        &registered(r#"{"info": {"title": 1}}"#),
        &["route GET /r registered by plugin `echo`: info.title must be a string"],
    );
    expect_startup_error(
        &registered(r#"{"openapi": {"responses": {"404": "gone"}}}"#),
        &["openapi.responses.404 must be an object"],
    );
    expect_startup_error(
        "[openapi]\nenabled = true\ntitel = \"x\"\n",
        &["spikard.toml:3:1", "unknown field `titel`"],
    );
    expect_startup_error(
        "[openapi]\nenabled = true\npath = \"openapi.json\"\n",
        &["spikard.toml:3:8: openapi.path: `openapi.json` must be a plain absolute path"],
    );
    expect_startup_error(
        "[openapi]\ndocs_path = true\n",
        &["spikard.toml:2:13: openapi.docs_path: write a path"],
    );
    expect_startup_error(
        "[server]\nmetrics_path = \"/docs\"\n[openapi]\nenabled = true\n",
        &["openapi.docs_path: `/docs` is also server.metrics_path"],
    );
    expect_startup_error(
        &format!(
            "[openapi]\nenabled = true\n[[static]]\nprefix = \"/docs/files\"\ndir = \"{}\"\n",
            repo_root().join("host/assets").display()
        ),
        &["openapi.docs_path: `/docs` overlaps the static files mounted at /docs/files"],
    );
}

/// `config/spikard.toml` (the Python example app, `[openapi] enabled = true`): its document is
/// valid and lists the app's routes. Skipped when the Python plugin or .venv is missing.
#[test]
fn the_bundled_python_config_serves_a_valid_document() {
    let python = spikard_tests::target_dir().join("libspikard_python.so");
    let venv = repo_root().join(".venv");
    if !python.exists() || !venv.exists() {
        eprintln!("skipped: the Python plugin or .venv is missing");
        return;
    }
    let text = std::fs::read_to_string(repo_root().join("config/spikard.toml")).unwrap();
    let openapi = text
        .split("\n[openapi]\n")
        .nth(1)
        .expect("config/spikard.toml has [openapi]");
    assert!(
        openapi.contains("\nenabled = true"),
        "config/spikard.toml turns [openapi] on"
    );
    let config = text
        .replace(
            "\"../plugins/python\"",
            &format!("\"{}\"", repo_root().join("plugins/python").display()),
        )
        .replace("\"../.venv\"", &format!("\"{}\"", venv.display()));
    let server = Server::start(&config);
    let doc = fetch_document(&server);
    assert_valid(&doc);
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        paths.contains_key("/hello") && paths.contains_key("/items"),
        "{doc}"
    );
    assert_eq!(server.get("/docs").status, 200);
}
