//! End-to-end tests of [`RouteValidator`] through its public interface.

use super::*;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

fn compile(spec: SchemaSpec) -> RouteValidator {
    RouteValidator::compile(&spec).expect("valid schemas")
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

struct Request<'a> {
    path: &'a [(&'a str, String)],
    query: Option<&'a str>,
    headers: HeaderMap,
    body: Body<'a>,
}

impl Default for Request<'_> {
    fn default() -> Self {
        Self {
            path: &[],
            query: None,
            headers: HeaderMap::new(),
            body: Body::None,
        }
    }
}

fn run(validator: &RouteValidator, req: &Request<'_>) -> Result<Value, Value> {
    let path: Vec<(&str, Decoded<'_>)> = req
        .path
        .iter()
        .map(|(k, v)| (*k, Decoded::Text(Cow::Borrowed(v.as_str()))))
        .collect();
    let input = RequestInput {
        path: &path,
        query: req.query,
        headers: &req.headers,
        body: match req.body {
            Body::None => Body::None,
            Body::Json(v) => Body::Json(v),
            Body::Form(b) => Body::Form(b),
            Body::Multipart(parts) => Body::Multipart(parts),
        },
    };
    validator
        .validate(&input)
        .map(|ok| ok.params)
        .map_err(|errors| serde_json::to_value(errors.into_parts().0).expect("serialisable"))
}

fn query_route(properties: Value, required: &[&str]) -> RouteValidator {
    compile(SchemaSpec {
        query: Some(object(properties, required)),
        ..SchemaSpec::default()
    })
}

fn query(validator: &RouteValidator, raw: &str) -> Result<Value, Value> {
    run(
        validator,
        &Request {
            query: Some(raw),
            ..Request::default()
        },
    )
}

#[test]
fn query_values_are_coerced_by_type() {
    let v = query_route(
        json!({
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "active": {"type": "boolean"},
            "score": {"type": "number"},
        }),
        &["name", "age", "active", "score"],
    );
    let params = query(&v, "name=john+doe&age=0030&active=Yes&score=95.5&extra=x").unwrap();
    assert_eq!(
        params["query"],
        json!({"name": "john doe", "age": 30, "active": true, "score": 95.5, "extra": "x"})
    );
    assert_eq!(params["path"], json!({}));
    assert_eq!(params["headers"], json!({}));
    assert_eq!(params["cookies"], json!({}));
    assert!(params.get("form").is_none());
}

#[test]
fn query_parse_failures_are_pydantic_errors() {
    let v = query_route(
        json!({
            "q": {"type": "string"},
            "skip": {"type": "integer"},
            "ratio": {"type": "number"},
            "is_active": {"type": "boolean"},
        }),
        &["q", "skip"],
    );
    let errors = query(&v, "q=test&skip=not_a_number&ratio=x&is_active=maybe").unwrap_err();
    assert_eq!(
        errors,
        json!([
            {"type": "bool_parsing", "loc": ["query", "is_active"],
             "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"},
            {"type": "float_parsing", "loc": ["query", "ratio"],
             "msg": "Input should be a valid number, unable to parse string as a number", "input": "x"},
            {"type": "int_parsing", "loc": ["query", "skip"],
             "msg": "Input should be a valid integer, unable to parse string as an integer",
             "input": "not_a_number"},
        ])
    );
}

#[test]
fn boolean_empty_string_is_false() {
    let v = query_route(json!({"active": {"type": "boolean"}}), &["active"]);
    assert_eq!(
        query(&v, "active=").unwrap()["query"],
        json!({"active": false})
    );
}

#[test]
fn missing_required_query_param() {
    let v = query_route(json!({"query": {"type": "string"}}), &["query"]);
    assert_eq!(
        query(&v, "").unwrap_err(),
        json!([{"type": "missing", "loc": ["query", "query"], "msg": "Field required", "input": null}])
    );
}

#[test]
fn repeated_keys_make_arrays() {
    let v = query_route(
        json!({
            "ids": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            "q": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}, "default": []},
            "last": {"type": "string"},
        }),
        &["ids"],
    );
    let params = query(&v, "ids=1&ids=2&ids=3&q=foo&last=a&last=b&other=1&other=2").unwrap();
    assert_eq!(
        params["query"],
        json!({"ids": [1, 2, 3], "q": ["foo"], "tags": [], "last": "b", "other": ["1", "2"]})
    );
    let errors = query(&v, "ids=1&ids=x&ids=y").unwrap_err();
    assert_eq!(errors[0]["loc"], json!(["query", "ids", 1]));
    assert_eq!(errors[1]["loc"], json!(["query", "ids", 2]));
    assert_eq!(errors[1]["input"], json!("y"));
    assert_eq!(errors.as_array().map(Vec::len), Some(2));
    let errors = query(&v, "ids=1").unwrap_err();
    assert_eq!(
        errors,
        json!([{"type": "too_short", "loc": ["query", "ids"],
                "msg": "List should have at least 2 item after validation",
                "input": ["1"], "ctx": {"min_length": 2}}])
    );
}

#[test]
fn array_separators_and_bracket_keys() {
    let v = query_route(
        json!({
            "tags": {"type": "array", "items": {"type": "string"}, "separator": "|"},
            "colors": {"type": "array", "items": {"type": "string"}, "separator": ";"},
            "words": {"type": "array", "items": {"type": "string"}, "separator": " "},
            "ids": {"type": "array", "items": {"type": "integer"}},
        }),
        &[],
    );
    let params = query(
        &v,
        "tags=python|rust&colors=red;green;blue&words=rust%20web+framework&ids[]=1&ids[]=2",
    )
    .unwrap();
    assert_eq!(
        params["query"],
        json!({
            "tags": ["python", "rust"],
            "colors": ["red", "green", "blue"],
            "words": ["rust", "web", "framework"],
            "ids": [1, 2],
        })
    );
}

#[test]
fn constraint_errors_use_pydantic_wording() {
    let v = query_route(
        json!({
            "name": {"type": "string", "minLength": 3},
            "code": {"type": "string", "pattern": "^[0-9]{3,}$"},
            "limit": {"type": "integer", "maximum": 100},
            "price": {"type": "number", "exclusiveMinimum": 0.5},
            "qty": {"type": "integer", "multipleOf": 5},
            "model": {"type": "string", "enum": ["alexnet", "resnet", "lenet"]},
        }),
        &[],
    );
    let errors = query(
        &v,
        "name=ab&code=abc&limit=101&price=0.5&qty=17&model=vgg16",
    )
    .unwrap_err();
    assert_eq!(
        errors,
        json!([
            {"type": "string_pattern_mismatch", "loc": ["query", "code"],
             "msg": "String should match pattern '^[0-9]{3,}$'", "input": "abc",
             "ctx": {"pattern": "^[0-9]{3,}$"}},
            {"type": "less_than_equal", "loc": ["query", "limit"],
             "msg": "Input should be less than or equal to 100", "input": "101", "ctx": {"le": 100}},
            {"type": "enum", "loc": ["query", "model"],
             "msg": "Input should be 'alexnet', 'resnet' or 'lenet'", "input": "vgg16",
             "ctx": {"expected": "'alexnet', 'resnet' or 'lenet'"}},
            {"type": "string_too_short", "loc": ["query", "name"],
             "msg": "String should have at least 3 characters", "input": "ab",
             "ctx": {"min_length": 3}},
            {"type": "greater_than", "loc": ["query", "price"],
             "msg": "Input should be greater than 0.5", "input": "0.5", "ctx": {"gt": 0.5}},
            {"type": "multiple_of", "loc": ["query", "qty"],
             "msg": "Input should be a multiple of 5", "input": "17", "ctx": {"multiple_of": 5}},
        ])
    );
}

#[test]
fn formats_are_checked_with_pydantic_types() {
    let v = query_route(
        json!({
            "id": {"type": "string", "format": "uuid"},
            "day": {"type": "string", "format": "date"},
            "email": {"type": "string", "format": "email"},
            "ip": {"type": "string", "format": "ipv4"},
        }),
        &[],
    );
    let ok = query(
        &v,
        "id=c892496f-b1fd-4b91-bdb8-b46f92df1716&day=2024-01-15&email=a%40b.co&ip=1.2.3.4",
    );
    assert!(ok.is_ok(), "{ok:?}");
    let errors = query(&v, "id=not-a-uuid&day=2025-13-45&email=nope&ip=999.1.1.1").unwrap_err();
    let kinds: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "date_parsing",
            "string_pattern_mismatch",
            "uuid_parsing",
            "ip_v4_address"
        ]
    );
    assert_eq!(
        errors[0]["msg"],
        "Input should be a valid date in the format YYYY-MM-DD, month value is outside expected range of 1-12"
    );
    assert_eq!(
        errors[2]["msg"],
        "Input should be a valid UUID, invalid character: expected an optional prefix of \
         `urn:uuid:` followed by [0-9a-fA-F-], found `n` at 0"
    );
}

#[test]
fn undeclared_params_only_fail_when_forbidden() {
    let open = compile(SchemaSpec {
        query: Some(
            json!({"type": "object", "properties": {"a": {"type": "integer"}},
                           "additionalProperties": {"type": "integer"}}),
        ),
        ..SchemaSpec::default()
    });
    assert_eq!(
        query(&open, "a=1&b=x").unwrap()["query"],
        json!({"a": 1, "b": "x"})
    );
    let closed = compile(SchemaSpec {
        query: Some(
            json!({"type": "object", "properties": {"a": {"type": "integer"}},
                           "additionalProperties": false}),
        ),
        ..SchemaSpec::default()
    });
    let errors = query(&closed, "a=1&b=x&c=y").unwrap_err();
    assert_eq!(errors[0]["loc"], json!(["query", "b"]));
    assert_eq!(errors[1]["loc"], json!(["query", "c"]));
    assert_eq!(errors[1]["ctx"]["unexpected_field"], "c");
}

#[test]
fn no_schema_passes_strings_through() {
    let v = compile(SchemaSpec::default());
    let path = [("id", "42".to_owned())];
    let req = Request {
        path: &path,
        query: Some("a=1&a=2&b=%20x"),
        headers: headers(&[("x-token", "t"), ("cookie", "s=1")]),
        ..Request::default()
    };
    assert_eq!(
        run(&v, &req).unwrap(),
        json!({"path": {"id": "42"}, "query": {"a": ["1", "2"], "b": " x"},
               "headers": {}, "cookies": {}})
    );
    assert!(!v.has_body_schema());
}

#[test]
fn path_params_are_coerced() {
    let v = compile(SchemaSpec {
        path: Some(object(
            json!({
                "version": {"type": "number"},
                "service_id": {"type": "integer", "exclusiveMinimum": 3},
                "flag": {"type": "boolean"},
            }),
            &["version", "service_id", "flag"],
        )),
        ..SchemaSpec::default()
    });
    let path = [
        ("version", "1.5".to_owned()),
        ("service_id", "4".to_owned()),
        ("flag", "True".to_owned()),
        ("extra", "x".to_owned()),
    ];
    let req = Request {
        path: &path,
        ..Request::default()
    };
    assert_eq!(
        run(&v, &req).unwrap()["path"],
        json!({"version": 1.5, "service_id": 4, "flag": true, "extra": "x"})
    );
    let path = [
        ("version", "x".to_owned()),
        ("service_id", "2".to_owned()),
        ("flag", "1".to_owned()),
    ];
    let req = Request {
        path: &path,
        ..Request::default()
    };
    assert_eq!(
        run(&v, &req).unwrap_err(),
        json!([
            {"type": "greater_than", "loc": ["path", "service_id"],
             "msg": "Input should be greater than 3", "input": "2", "ctx": {"gt": 3}},
            {"type": "float_parsing", "loc": ["path", "version"],
             "msg": "Input should be a valid number, unable to parse string as a number",
             "input": "x"},
        ])
    );
}

#[test]
fn headers_match_case_insensitively_and_only_declared_are_kept() {
    let v = compile(SchemaSpec {
        headers: Some(object(
            json!({
                "X-Token": {"type": "string", "minLength": 3},
                "x-count": {"type": "integer"},
                "Accept": {"type": "array", "items": {"type": "string"}},
                "X-Missing": {"type": "string"},
            }),
            &["X-Token", "X-Missing"],
        )),
        ..SchemaSpec::default()
    });
    let req = Request {
        headers: headers(&[
            ("x-token", "ab"),
            ("X-COUNT", "7"),
            ("accept", "text/html, application/json"),
            ("accept", "*/*"),
            ("host", "example.com"),
        ]),
        ..Request::default()
    };
    assert_eq!(
        run(&v, &req).unwrap_err(),
        json!([
            {"type": "missing", "loc": ["headers", "x-missing"], "msg": "Field required", "input": null},
            {"type": "string_too_short", "loc": ["headers", "x-token"],
             "msg": "String should have at least 3 characters", "input": "ab", "ctx": {"min_length": 3}},
        ])
    );
    let req = Request {
        headers: headers(&[
            ("x-token", "abc"),
            ("x-token", "def"),
            ("x-count", "7"),
            ("x-missing", "here"),
            ("accept", "text/html, application/json"),
            ("accept", "*/*"),
            ("host", "example.com"),
        ]),
        ..Request::default()
    };
    assert_eq!(
        run(&v, &req).unwrap()["headers"],
        json!({"X-Token": "abc, def", "x-count": 7, "X-Missing": "here",
               "Accept": ["text/html", "application/json", "*/*"]})
    );
}

#[test]
fn cookies_are_parsed_from_the_cookie_header() {
    let v = compile(SchemaSpec {
        cookies: Some(object(
            json!({
                "session_id": {"type": "string", "maxLength": 5},
                "n": {"type": "integer"},
                "key": {"type": "string"},
            }),
            &["key"],
        )),
        ..SchemaSpec::default()
    });
    let req = Request {
        headers: headers(&[
            ("cookie", "session_id=abc; other=1"),
            ("cookie", "n=\"42\"; key=k=v"),
        ]),
        ..Request::default()
    };
    assert_eq!(
        run(&v, &req).unwrap()["cookies"],
        json!({"session_id": "abc", "n": 42, "key": "k=v"})
    );
    let req = Request {
        headers: headers(&[("cookie", "session_id=toolongvalue")]),
        ..Request::default()
    };
    assert_eq!(
        run(&v, &req).unwrap_err(),
        json!([
            {"type": "missing", "loc": ["cookie", "key"], "msg": "Field required", "input": null},
            {"type": "string_too_long", "loc": ["cookie", "session_id"],
             "msg": "String should have at most 5 characters", "input": "toolongvalue",
             "ctx": {"max_length": 5}},
        ])
    );
}

fn body_route(schema: Value) -> RouteValidator {
    compile(SchemaSpec {
        body: Some(schema),
        ..SchemaSpec::default()
    })
}

fn json_body(validator: &RouteValidator, body: &Value) -> Result<Value, Value> {
    run(
        validator,
        &Request {
            body: Body::Json(body),
            ..Request::default()
        },
    )
}

#[test]
fn json_body_missing_and_nested_locations() {
    let v = body_route(json!({
        "type": "object",
        "required": ["name", "items", "profile"],
        "properties": {
            "name": {"type": "string"},
            "items": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 2}, "qty": {"type": "integer"}}
            }},
            "profile": {"type": "object", "required": ["email"],
                        "properties": {"email": {"type": "string"}}}
        }
    }));
    assert!(v.has_body_schema());
    let body = json!({
        "items": [{"name": "a"}, {"qty": 1.5}, {"name": "ok", "qty": "3"}],
        "profile": {"name": "John"}
    });
    assert_eq!(
        json_body(&v, &body).unwrap_err(),
        json!([
            {"type": "string_too_short", "loc": ["body", "items", 0, "name"],
             "msg": "String should have at least 2 characters", "input": "a", "ctx": {"min_length": 2}},
            {"type": "missing", "loc": ["body", "items", 1, "name"], "msg": "Field required",
             "input": {"qty": 1.5}},
            {"type": "int_from_float", "loc": ["body", "items", 1, "qty"],
             "msg": "Input should be a valid integer, got a number with a fractional part",
             "input": 1.5},
            {"type": "int_type", "loc": ["body", "items", 2, "qty"],
             "msg": "Input should be a valid integer", "input": "3"},
            {"type": "missing", "loc": ["body", "name"], "msg": "Field required", "input": body},
            {"type": "missing", "loc": ["body", "profile", "email"], "msg": "Field required",
             "input": {"name": "John"}},
        ])
    );
    let ok = json!({"name": "x", "items": [], "profile": {"email": "e"}});
    assert_eq!(
        json_body(&v, &ok).unwrap(),
        json!({"path": {}, "query": {}, "headers": {}, "cookies": {}})
    );
}

#[test]
fn json_body_type_and_keyword_errors() {
    let v = body_route(json!({
        "type": "object",
        "properties": {
            "price": {"type": "number", "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
            "version": {"const": "1.0"},
            "id": {"type": "string", "format": "uuid"},
        },
        "additionalProperties": false
    }));
    let body = json!({"price": "not a number", "tags": ["a", 2], "version": "2.0",
                      "id": "nope", "extra": true});
    assert_eq!(
        json_body(&v, &body).unwrap_err(),
        json!([
            {"type": "validation_error", "loc": ["body", "extra"],
             "msg": "Additional properties are not allowed", "input": true,
             "ctx": {"additional_properties": false, "unexpected_field": "extra"}},
            {"type": "uuid_parsing", "loc": ["body", "id"], "msg": "Input should be a valid UUID",
             "input": "nope"},
            {"type": "float_parsing", "loc": ["body", "price"],
             "msg": "Input should be a valid number, unable to parse string as a number",
             "input": "not a number"},
            {"type": "too_long", "loc": ["body", "tags"],
             "msg": "List should have at most 1 item after validation", "input": ["a", 2],
             "ctx": {"max_length": 1}},
            {"type": "string_type", "loc": ["body", "tags", 1], "msg": "Input should be a valid string",
             "input": 2},
            {"type": "validation_error", "loc": ["body", "version"], "msg": "\"1.0\" was expected",
             "input": "2.0"},
        ])
    );
    let errors = json_body(&v, &json!({"price": 0.5})).unwrap_err();
    assert_eq!(
        errors,
        json!([{"type": "greater_than_equal", "loc": ["body", "price"],
                "msg": "Input should be greater than or equal to 1", "input": 0.5, "ctx": {"ge": 1}}])
    );
    let errors = json_body(&v, &json!([1])).unwrap_err();
    assert_eq!(errors[0]["type"], "model_attributes_type");
    assert_eq!(errors[0]["loc"], json!(["body"]));
}

#[test]
fn combinator_errors_use_jsonschema_wording() {
    let v = body_route(json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "credit_card": {"type": "string"}},
        "anyOf": [{"required": ["email"]}, {"required": ["phone"]}],
        "dependencies": {"credit_card": ["billing_address"]}
    }));
    let body = json!({"name": "John Doe", "credit_card": "1"});
    assert_eq!(
        json_body(&v, &body).unwrap_err(),
        json!([
            {"type": "validation_error", "loc": ["body"],
             "msg": "\"billing_address\" is a required property", "input": body},
            {"type": "validation_error", "loc": ["body"],
             "msg": "{\"name\":\"John Doe\",\"credit_card\":\"1\"} is not valid under any of the schemas listed in the 'anyOf' keyword",
             "input": body},
        ])
    );
}

/// An optional nested model, as pydantic and msgspec write it.
fn optional_model_route() -> RouteValidator {
    body_route(json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "supplier": {"anyOf": [{"$ref": "#/$defs/Supplier"}, {"type": "null"}], "default": null},
            "parts": {"type": "array", "items": {"oneOf": [{"$ref": "#/$defs/Supplier"}, {"type": "null"}]}},
            "qty": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
            "either": {"anyOf": [{"type": "integer"}, {"$ref": "#/$defs/Supplier"}]}
        },
        "$defs": {"Supplier": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 2}, "country": {"type": "string"}}
        }}
    }))
}

#[test]
fn optional_models_report_their_leaf_errors() {
    let v = optional_model_route();
    let body = json!({"name": "w", "supplier": {"country": 3}});
    assert_eq!(
        json_body(&v, &body).unwrap_err(),
        json!([
            {"type": "string_type", "loc": ["body", "supplier", "country"],
             "msg": "Input should be a valid string", "input": 3},
            {"type": "missing", "loc": ["body", "supplier", "name"], "msg": "Field required",
             "input": {"country": 3}},
        ])
    );
    // Through oneOf, in an array, and a constraint of an optional scalar.
    let body = json!({"name": "w", "parts": [null, {"name": "x"}], "qty": 0});
    assert_eq!(
        json_body(&v, &body).unwrap_err(),
        json!([
            {"type": "string_too_short", "loc": ["body", "parts", 1, "name"],
             "msg": "String should have at least 2 characters", "input": "x",
             "ctx": {"min_length": 2}},
            {"type": "greater_than_equal", "loc": ["body", "qty"],
             "msg": "Input should be greater than or equal to 1", "input": 0, "ctx": {"ge": 1}},
        ])
    );
    // A wrong type for an optional scalar is that scalar's type error.
    let errors = json_body(&v, &json!({"name": "w", "qty": "many"})).unwrap_err();
    assert_eq!(
        errors,
        json!([{"type": "int_parsing", "loc": ["body", "qty"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "many"}])
    );
    // Only one branch takes an object: its errors, at the leaf.
    let errors = json_body(&v, &json!({"name": "w", "either": {"name": 1}})).unwrap_err();
    assert_eq!(errors[0]["loc"], json!(["body", "either", "name"]));
    assert_eq!(errors[0]["type"], "string_type");
    // Valid values pass; null passes.
    assert!(json_body(&v, &json!({"name": "w", "supplier": null, "parts": [null]})).is_ok());
    assert!(json_body(
        &v,
        &json!({"name": "w", "supplier": {"name": "ok"}, "either": 3})
    )
    .is_ok());
}

#[test]
fn ambiguous_unions_keep_the_parent_error() {
    let v = optional_model_route();
    // A string fits neither branch of `either` (integer or object): no branch is singled out.
    let errors = json_body(&v, &json!({"name": "w", "either": "x"})).unwrap_err();
    assert_eq!(errors.as_array().map(Vec::len), Some(1));
    assert_eq!(errors[0]["loc"], json!(["body", "either"]));
    assert_eq!(errors[0]["type"], "validation_error");
    assert!(errors[0]["msg"]
        .as_str()
        .is_some_and(|m| m.contains("anyOf")));
}

#[test]
fn union_leaf_errors_respect_the_error_limit() {
    let v = optional_model_route().with_max_errors(3);
    let parts: Vec<Value> = (0..50).map(|_| json!({"name": 1, "country": 2})).collect();
    let body = json!({"name": "w", "parts": parts});
    let req = Request {
        body: Body::Json(&body),
        ..Request::default()
    };
    let (listed, omitted) = bounded(&v, &req);
    assert_eq!((listed.len(), omitted), (3, 97));
    assert_eq!(listed[0]["loc"], json!(["body", "parts", 0, "country"]));
}

#[test]
fn pydantic_bodies_are_checked_laxly() {
    let v = body_route(json!({
        "x-spikard-lax": "pydantic",
        "type": "object",
        "required": ["qty"],
        "properties": {
            "qty": {"type": "integer", "minimum": 1},
            "price": {"type": "number"},
            "ok": {"type": "boolean"},
            "at": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "supplier": {"anyOf": [{"$ref": "#/$defs/Supplier"}, {"type": "null"}]}
        },
        "$defs": {"Supplier": {"type": "object", "required": ["name"],
                               "properties": {"name": {"type": "string"}, "rating": {"type": "integer"}}}}
    }));
    let lax = json!({"qty": "5", "price": "9.5", "ok": "true", "at": "2024-01-01",
                     "tags": ["a", "a"], "supplier": {"name": "s", "rating": 5.0}});
    assert!(json_body(&v, &lax).is_ok());
    assert!(json_body(&v, &json!({"qty": 5.0, "ok": 1, "at": 1_700_000_000})).is_ok());
    // Constraints that apply to the value's own type stay, so do structure and required.
    let errors = json_body(&v, &json!({"qty": 0, "supplier": {}})).unwrap_err();
    assert_eq!(
        errors,
        json!([
            {"type": "greater_than_equal", "loc": ["body", "qty"],
             "msg": "Input should be greater than or equal to 1", "input": 0, "ctx": {"ge": 1}},
            {"type": "missing", "loc": ["body", "supplier", "name"], "msg": "Field required",
             "input": {}},
        ])
    );
    let errors = json_body(&v, &json!({"qty": [1]})).unwrap_err();
    assert_eq!(errors[0]["loc"], json!(["body", "qty"]));
}

#[test]
fn missing_body_is_reported() {
    let v = body_route(json!({"type": "object"}));
    assert_eq!(
        run(&v, &Request::default()).unwrap_err(),
        json!([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}])
    );
}

fn form(validator: &RouteValidator, raw: &str) -> Result<Value, Value> {
    run(
        validator,
        &Request {
            body: Body::Form(raw.as_bytes()),
            ..Request::default()
        },
    )
}

#[test]
fn forms_are_coerced_and_validated_as_body() {
    let v = body_route(json!({
        "type": "object",
        "required": ["username", "quantity"],
        "properties": {
            "username": {"type": "string", "minLength": 3},
            "quantity": {"type": "integer", "minimum": 1},
            "subscribe": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "contact.email": {"type": "string", "format": "email"},
        }
    }));
    let params = form(
        &v,
        "username=john+doe&quantity=2&subscribe=true&tags[]=a&tags[]=b&contact.email=j%40x.com&note=hi",
    )
    .unwrap();
    assert_eq!(
        params["form"],
        json!({"username": "john doe", "quantity": 2, "subscribe": true, "tags": ["a", "b"],
               "contact.email": "j@x.com", "note": "hi"})
    );
    let errors = form(&v, "quantity=0&contact.email=bad").unwrap_err();
    assert_eq!(
        errors,
        json!([
            {"type": "string_pattern_mismatch", "loc": ["body", "contact.email"],
             "msg": "String should match pattern '^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9-.]+$'",
             "input": "bad", "ctx": {"pattern": "^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9-.]+$"}},
            {"type": "greater_than_equal", "loc": ["body", "quantity"],
             "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}},
            {"type": "missing", "loc": ["body", "username"], "msg": "Field required",
             "input": {"quantity": 0, "contact.email": "bad"}},
        ])
    );
    let errors = form(&v, "username=abc&quantity=not-a-number").unwrap_err();
    assert_eq!(
        errors,
        json!([{"type": "int_parsing", "loc": ["body", "quantity"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "not-a-number"}])
    );
}

#[test]
fn every_source_is_reported_in_order() {
    let v = compile(SchemaSpec {
        path: Some(object(json!({"id": {"type": "integer"}}), &["id"])),
        query: Some(object(json!({"q": {"type": "string"}}), &["q"])),
        headers: Some(object(json!({"X-Token": {"type": "string"}}), &["X-Token"])),
        cookies: Some(object(json!({"session": {"type": "string"}}), &["session"])),
        body: Some(object(json!({"name": {"type": "string"}}), &["name"])),
    });
    let path = [("id", "abc".to_owned())];
    let body = json!({});
    let req = Request {
        path: &path,
        body: Body::Json(&body),
        ..Request::default()
    };
    let errors = run(&v, &req).unwrap_err();
    let locs: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].clone())
        .collect();
    assert_eq!(
        locs,
        [
            json!(["path", "id"]),
            json!(["query", "q"]),
            json!(["headers", "x-token"]),
            json!(["cookie", "session"]),
            json!(["body", "name"]),
        ]
    );
}

#[test]
fn hostile_input_never_panics() {
    let v = query_route(
        json!({
            "n": {"type": "integer"},
            "f": {"type": "number"},
            "s": {"type": "string", "pattern": "^a"},
            "l": {"type": "array", "items": {"type": "integer"}},
        }),
        &[],
    );
    for raw in [
        "n=%&f=%zz&s=%ff%fe",
        "n=99999999999999999999999999999999999999&f=1e400",
        "&&&=&==&l[]=&l[18446744073709551616]=1&l[3]=2",
        "n=-&f=.&s=\u{0}",
    ] {
        let _ = query(&v, raw);
    }
    let huge = query(&v, "n=99999999999999999999999999999999999999").unwrap();
    assert_eq!(
        huge["query"]["n"],
        exact("99999999999999999999999999999999999999")
    );
    assert!(query(&v, "f=1e400").is_err());
}

#[test]
fn invalid_schemas_are_config_errors() {
    let err = RouteValidator::compile(&SchemaSpec {
        headers: Some(json!({"type": "object", "properties": {"a": {"type": "nope"}}})),
        ..SchemaSpec::default()
    })
    .err()
    .expect("rejected");
    assert!(err.starts_with("invalid headers schema"), "{err}");
    let err = RouteValidator::compile(&SchemaSpec {
        body: Some(json!({"pattern": "("})),
        ..SchemaSpec::default()
    })
    .err()
    .expect("rejected");
    assert!(err.contains("body"), "{err}");
}

#[test]
fn coerced_values_report_the_text_sent() {
    let v = query_route(
        json!({
            "ids": {"type": "array", "items": {"type": "integer", "maximum": 9}, "maxItems": 2},
            "on": {"type": "boolean", "const": false},
        }),
        &[],
    );
    let errors = query(&v, "ids=01&ids=10&ids=3&on=yes").unwrap_err();
    let inputs: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["loc"].clone(), e["input"].clone()))
        .collect();
    assert_eq!(
        inputs,
        [
            (json!(["query", "ids"]), json!(["01", "10", "3"])),
            (json!(["query", "ids", 1]), json!("10")),
            (json!(["query", "on"]), json!("yes")),
        ]
    );
}

fn multipart(validator: &RouteValidator, parts: &[&str]) -> Result<Value, Value> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(b"--B\r\n");
        body.extend_from_slice(part.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--B--\r\n");
    let parts = crate::multipart::parse(&body, "B").expect("well-formed");
    run(
        validator,
        &Request {
            body: Body::Multipart(&parts),
            ..Request::default()
        },
    )
}

fn field(name: &str, value: &str) -> String {
    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}")
}

fn file(name: &str, filename: &str, media_type: &str, content: &str) -> String {
    format!(
        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {media_type}\r\n\r\n{content}"
    )
}

#[test]
fn multipart_fields_are_coerced_and_files_become_objects() {
    let v = body_route(json!({
        "type": "object",
        "required": ["username", "avatar"],
        "properties": {
            "username": {"type": "string", "minLength": 3},
            "age": {"type": "integer"},
            "avatar": {"type": "string", "format": "binary"},
            "docs": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object", "required": ["filename"]},
        }
    }));
    let params = multipart(
        &v,
        &[
            &field("username", "john"),
            &field("age", "42"),
            &file("avatar", "me.png", "image/png", "PNG"),
            &file("docs", "a.txt", "text/plain", "first"),
            &file("docs", "b.txt", "text/plain", "second"),
            &field("tags", "x"),
            &field("tags", "y"),
            &file("meta", "m.json", "application/json", "{}"),
            &field("note", "extra"),
        ],
    )
    .unwrap();
    let upload = |filename: &str, media_type: &str, content: &str| json!({"filename": filename, "content_type": media_type, "size": content.len(), "content": content});
    assert_eq!(
        params["form"],
        json!({
            "username": "john",
            "age": 42,
            "avatar": upload("me.png", "image/png", "PNG"),
            "docs": [upload("a.txt", "text/plain", "first"), upload("b.txt", "text/plain", "second")],
            "tags": ["x", "y"],
            "meta": upload("m.json", "application/json", "{}"),
            "note": "extra",
        })
    );
    // A part without a filename is a text field, even for a binary field.
    let params = multipart(&v, &[&field("username", "john"), &field("avatar", "text")]).unwrap();
    assert_eq!(params["form"]["avatar"], "text");

    let errors = multipart(&v, &[&field("username", "jo"), &field("age", "x")]).unwrap_err();
    let locs: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].clone(), e["loc"].clone()))
        .collect();
    assert_eq!(
        locs,
        [
            (json!("int_parsing"), json!(["body", "age"])),
            (json!("missing"), json!(["body", "avatar"])),
            (json!("string_too_short"), json!(["body", "username"])),
        ]
    );
}

#[test]
fn an_empty_multipart_form_reports_missing_fields() {
    let v = body_route(object(
        json!({"file": {"type": "string", "format": "binary"}}),
        &["file"],
    ));
    assert_eq!(
        multipart(&v, &[]).unwrap_err(),
        json!([{"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": {}}])
    );
}

#[test]
fn file_rules_are_checked_per_upload() {
    let v = body_route(json!({
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "binary", "contentMediaType": "image/png, image/jpeg",
                      "x-magic-numbers": true, "maxLength": 8},
            "docs": {"type": "array", "items": {"type": "string", "format": "binary", "minLength": 2}},
        }
    }));
    assert!(multipart(&v, &[&file("image", "a.jpg", "image/jpeg", "\u{ff}")]).is_err());
    let png = "Content-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n";
    let mut body = format!("--B\r\n{png}").into_bytes();
    body.extend_from_slice(b"\x89PNG\r\n\x1a\n\r\n--B--\r\n");
    let parts = crate::multipart::parse(&body, "B").unwrap();
    let ok = run(
        &v,
        &Request {
            body: Body::Multipart(&parts),
            ..Request::default()
        },
    )
    .unwrap();
    assert_eq!(ok["form"]["image"]["content_encoding"], "base64");
    assert_eq!(ok["form"]["image"]["size"], 8);

    let errors = multipart(
        &v,
        &[
            &file("image", "run.sh", "application/x-sh", "#!/bin/sh\necho"),
            &file("docs", "a.txt", "text/plain", "ok"),
            &file("docs", "b.txt", "text/plain", "x"),
        ],
    )
    .unwrap_err();
    let found: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].clone(), e["loc"].clone(), e["msg"].clone()))
        .collect();
    assert_eq!(
        found,
        [
            (
                json!("validation_error"),
                json!(["files", "docs", 1]),
                json!("File too small. Minimum size is 2 bytes")
            ),
            (
                json!("validation_error"),
                json!(["files", "image"]),
                json!(
                    "Invalid content type 'application/x-sh'. Allowed types: image/png, image/jpeg"
                )
            ),
            (
                json!("validation_error"),
                json!(["files", "image"]),
                json!("File too large. Maximum size is 8 bytes")
            ),
        ]
    );
    // The byte limit is the host's, not the schema's character count; JSON bodies keep it.
    let long = json!({"image": "0123456789"});
    assert_eq!(
        json_body(&v, &long).unwrap_err()[0]["type"],
        "string_too_long"
    );
    // Urlencoded values are text/plain.
    assert_eq!(
        form(&v, "image=abc").unwrap_err()[0]["loc"],
        json!(["files", "image"])
    );
}

// -- exact numbers --------------------------------------------------------------------------

/// A JSON value parsed from text, so numbers keep every digit.
fn exact(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

const BIG: &str = "99999999999999999999999";

#[test]
fn big_integers_are_exact_in_every_source() {
    let int = || json!({"n": {"type": "integer"}});
    let v = compile(SchemaSpec {
        path: Some(object(int(), &["n"])),
        query: Some(object(int(), &["n"])),
        headers: Some(object(int(), &["n"])),
        cookies: Some(object(int(), &["n"])),
        ..SchemaSpec::default()
    });
    let path = [("n", format!("-{BIG}"))];
    let query = format!("n=+000{BIG}");
    let cookie = format!("n={BIG}0");
    let req = Request {
        path: &path,
        query: Some(&query),
        headers: headers(&[("n", &format!("{BIG}.000")), ("cookie", &cookie)]),
        ..Request::default()
    };
    let params = run(&v, &req).unwrap();
    assert_eq!(params["path"]["n"], exact(&format!("-{BIG}")));
    assert_eq!(params["query"]["n"], exact(BIG));
    assert_eq!(params["headers"]["n"], exact(BIG));
    assert_eq!(params["cookies"]["n"], exact(&format!("{BIG}0")));
    // Handed to plugins as the digits themselves.
    let text = serde_json::to_string(&params).unwrap();
    assert!(
        text.contains(&format!(r#""query":{{"n":{BIG}}}"#)),
        "{text}"
    );

    let form_route = body_route(object(
        json!({"n": {"type": "integer"}, "x": {"type": "number"}}),
        &[],
    ));
    let params = form(&form_route, &format!("n={BIG}&x=0.1000000000000000000001")).unwrap();
    assert_eq!(params["form"]["n"], exact(BIG));
    assert_eq!(params["form"]["x"].to_string(), "0.1000000000000000000001");
}

#[test]
fn bounds_on_big_integers_compare_exactly() {
    // 2^64 and 2^64 + 1 are the same f64; the limits must still tell them apart.
    let v = query_route(
        exact(
            r#"{"low": {"type": "integer", "maximum": 18446744073709551616},
                "high": {"type": "integer", "exclusiveMinimum": 18446744073709551616},
                "step": {"type": "integer", "multipleOf": 10000000000000000000000}}"#,
        ),
        &[],
    );
    assert!(query(&v, "low=18446744073709551616&high=18446744073709551617").is_ok());
    assert!(query(&v, "step=300000000000000000000000").is_ok());
    let errors = query(
        &v,
        &format!("low=18446744073709551617&high=18446744073709551616&step={BIG}"),
    )
    .unwrap_err();
    assert_eq!(
        errors,
        exact(&format!(
            r#"[
            {{"type": "greater_than", "loc": ["query", "high"],
             "msg": "Input should be greater than 18446744073709551616",
             "input": "18446744073709551616", "ctx": {{"gt": 18446744073709551616}}}},
            {{"type": "less_than_equal", "loc": ["query", "low"],
             "msg": "Input should be less than or equal to 18446744073709551616",
             "input": "18446744073709551617", "ctx": {{"le": 18446744073709551616}}}},
            {{"type": "multiple_of", "loc": ["query", "step"],
             "msg": "Input should be a multiple of 10000000000000000000000",
             "input": "{BIG}", "ctx": {{"multiple_of": 10000000000000000000000}}}}
        ]"#
        ))
    );

    let body = body_route(exact(
        r#"{"type": "object", "properties": {"n": {"type": "integer", "minimum": 100000000000000000000001}}}"#,
    ));
    assert!(json_body(&body, &exact(r#"{"n": 100000000000000000000001}"#)).is_ok());
    let errors = json_body(&body, &exact(r#"{"n": 100000000000000000000000}"#)).unwrap_err();
    assert_eq!(errors[0]["type"], "greater_than_equal");
    assert_eq!(errors[0]["input"], exact("100000000000000000000000"));
    assert_eq!(errors[0]["ctx"]["ge"], exact("100000000000000000000001"));
}

#[test]
fn numbers_keep_their_types_and_integers_their_size_limit() {
    let v = query_route(
        json!({"i": {"type": "integer"}, "f": {"type": "number"}}),
        &[],
    );
    let params = query(&v, "i=42&f=1.5").unwrap();
    assert_eq!(params["query"], json!({"i": 42, "f": 1.5}));
    assert!(params["query"]["i"].is_u64() && params["query"]["f"].is_f64());
    assert_eq!(
        query(&v, "f=1e300").unwrap()["query"]["f"].as_f64(),
        Some(1e300)
    );
    let long = "9".repeat(4301);
    let errors = query(&v, &format!("i={long}&f=1e999")).unwrap_err();
    assert_eq!(errors[0]["type"], "float_parsing");
    assert_eq!(errors[1]["type"], "int_parsing_size");
    assert_eq!(
        errors[1]["msg"],
        "Unable to parse input string as an integer, exceeded maximum size"
    );
}

// -- undecodable bytes ----------------------------------------------------------------------

const STRING_UNICODE_MSG: &str =
    "Input should be a valid string, unable to parse raw data as a unicode string";

fn unicode_error(loc: Value, input: &str) -> Value {
    json!({"type": "string_unicode", "loc": loc, "msg": STRING_UNICODE_MSG, "input": input})
}

#[test]
fn undecodable_query_values_are_422_declared_or_not() {
    let v = query_route(
        json!({"q": {"type": "string"}, "n": {"type": "integer"},
               "tags": {"type": "array", "items": {"type": "string"}}}),
        &["q", "n"],
    );
    let errors = query(&v, "q=caf%E9&n=%ff1&tags=a&tags=b%C3&other=%fe&%ff=x").unwrap_err();
    assert_eq!(
        errors,
        json!([
            unicode_error(json!(["query", "n"]), "\u{fffd}1"),
            unicode_error(json!(["query", "other"]), "\u{fffd}"),
            unicode_error(json!(["query", "q"]), "caf\u{fffd}"),
            unicode_error(json!(["query", "tags", 1]), "b\u{fffd}"),
            unicode_error(json!(["query", "\u{fffd}"]), "x"),
        ])
    );
    // Without a query schema, too: the plugin would get altered text.
    let open = compile(SchemaSpec::default());
    assert_eq!(
        query(&open, "a=1&b=%80").unwrap_err(),
        json!([unicode_error(json!(["query", "b"]), "\u{fffd}")])
    );
    // Valid UTF-8, U+FFFD included, is text like any other.
    assert_eq!(
        query(&open, "a=%EF%BF%BD%E2%82%AC").unwrap()["query"],
        json!({"a": "\u{fffd}€"})
    );
}

#[test]
fn undecodable_declared_headers_and_cookies_are_422() {
    let v = compile(SchemaSpec {
        headers: Some(object(
            json!({"x-name": {"type": "string"}, "x-ids": {"type": "array", "items": {"type": "integer"}}}),
            &["x-name"],
        )),
        cookies: Some(object(json!({"session": {"type": "string"}}), &[])),
        ..SchemaSpec::default()
    });
    let mut map = headers(&[("x-ids", "1, 2"), ("x-other", "fine")]);
    let raw = |bytes: &[u8]| HeaderValue::from_bytes(bytes).expect("obs-text is a valid value");
    map.append("x-name", raw(b"caf\xe9"));
    map.append("x-ids", raw(b"3,\xff"));
    map.append("x-undeclared", raw(b"\xff"));
    map.append("cookie", raw(b"a=1; session=\"caf\xe9\"; b=\xff"));
    let req = Request {
        headers: map,
        ..Request::default()
    };
    assert_eq!(
        run(&v, &req).unwrap_err(),
        json!([
            unicode_error(json!(["headers", "x-ids", 2]), "3,\u{fffd}"),
            unicode_error(json!(["headers", "x-name"]), "caf\u{fffd}"),
            unicode_error(json!(["cookie", "session"]), "caf\u{fffd}"),
        ])
    );
    // Undeclared headers and cookies are not the validator's business.
    let mut map = headers(&[("x-name", "ok")]);
    map.append("x-undeclared", raw(b"\xff"));
    map.append("cookie", raw(b"b=\xff"));
    let req = Request {
        headers: map,
        ..Request::default()
    };
    assert_eq!(run(&v, &req).unwrap()["headers"], json!({"x-name": "ok"}));
}

#[test]
fn undecodable_path_and_form_values_are_422() {
    let typed = compile(SchemaSpec {
        path: Some(object(json!({"id": {"type": "integer"}}), &["id"])),
        ..SchemaSpec::default()
    });
    let open = compile(SchemaSpec::default());
    let headers = HeaderMap::new();
    let path = [
        ("id", Decoded::percent_decoded("%ff")),
        ("name", Decoded::percent_decoded("caf%C3%A9")),
    ];
    let input = RequestInput {
        path: &path,
        query: None,
        headers: &headers,
        body: Body::None,
    };
    for validator in [&typed, &open] {
        let Err(errors) = validator.validate(&input) else {
            panic!("bad bytes in the path must fail")
        };
        let errors = serde_json::to_value(errors.listed()).unwrap();
        assert_eq!(
            errors,
            json!([unicode_error(json!(["path", "id"]), "\u{fffd}")])
        );
    }

    let v = body_route(object(json!({"name": {"type": "string"}}), &["name"]));
    assert_eq!(
        form(&v, "name=%ff&extra=%fe").unwrap_err(),
        json!([
            unicode_error(json!(["body", "extra"]), "\u{fffd}"),
            unicode_error(json!(["body", "name"]), "\u{fffd}"),
        ])
    );
}

// -- bounded errors (issue 8): count, size, and no work per error proportional to the input --

/// The listed errors (as JSON) and the number omitted.
fn bounded(validator: &RouteValidator, req: &Request<'_>) -> (Vec<Value>, usize) {
    assert!(req.path.is_empty(), "path parameters are not used here");
    let input = RequestInput {
        path: &[],
        query: req.query,
        headers: &req.headers,
        body: match req.body {
            Body::None => Body::None,
            Body::Json(v) => Body::Json(v),
            Body::Form(b) => Body::Form(b),
            Body::Multipart(parts) => Body::Multipart(parts),
        },
    };
    let Err(errors) = validator.validate(&input) else {
        panic!("the request should fail validation")
    };
    let (listed, omitted) = errors.into_parts();
    let listed = listed
        .into_iter()
        .map(|e| serde_json::to_value(e).expect("serialisable"))
        .collect();
    (listed, omitted)
}

fn json_size(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).expect("serialisable").len()
}

fn item_route() -> RouteValidator {
    body_route(json!({
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1}, "price": {"type": "number"}},
        "required": ["name", "price"],
        "additionalProperties": false
    }))
}

#[test]
fn unexpected_properties_are_listed_up_to_the_limit_with_their_own_value() {
    let v = item_route();
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!("w"));
    body.insert("price".into(), json!(1.0));
    for i in 0..4000 {
        body.insert(format!("extra_{i:05}"), json!(i));
    }
    let body = Value::Object(body);
    let req = Request {
        body: Body::Json(&body),
        ..Request::default()
    };
    let (listed, omitted) = bounded(&v, &req);
    assert_eq!((listed.len(), omitted), (DEFAULT_MAX_ERRORS, 3900));
    assert_eq!(
        listed[7],
        json!({"type": "validation_error", "loc": ["body", "extra_00007"],
               "msg": "Additional properties are not allowed", "input": 7,
               "ctx": {"additional_properties": false, "unexpected_field": "extra_00007"}})
    );
    assert!(json_size(&listed) < 30_000, "{}", json_size(&listed));

    let few = item_route().with_max_errors(3);
    let (listed, omitted) = bounded(&few, &req);
    assert_eq!((listed.len(), omitted), (3, 3997));
}

#[test]
fn unknown_form_fields_past_the_limit_are_counted_once_each() {
    let v = item_route();
    let mut form = String::from("name=w&price=1");
    for i in 0..250 {
        form.push_str(&format!("&extra_{i:03}=v{i}"));
    }
    // Repeats of a listed name and of a counted one: still one error each.
    form.push_str("&extra_000=again&extra_249=again");
    let req = Request {
        body: Body::Form(form.as_bytes()),
        ..Request::default()
    };
    let (listed, omitted) = bounded(&v, &req);
    assert_eq!((listed.len(), omitted), (DEFAULT_MAX_ERRORS, 150));
    assert!(listed
        .iter()
        .all(|e| e["msg"] == "Additional properties are not allowed"));

    let few = item_route().with_max_errors(3);
    let (listed, omitted) = bounded(&few, &req);
    assert_eq!((listed.len(), omitted), (3, 247));

    let under = "name=w&price=1&a=1&b=2&b=3";
    let (listed, omitted) = bounded(
        &v,
        &Request {
            body: Body::Form(under.as_bytes()),
            ..Request::default()
        },
    );
    assert_eq!((listed.len(), omitted), (2, 0));
}

#[test]
fn long_names_values_and_enclosing_objects_are_cut() {
    let v = item_route();
    let long_name = "n".repeat(100_000);
    let long_value = "v".repeat(100_000);
    let mut body = serde_json::Map::new();
    body.insert(long_name.clone(), json!(long_value));
    body.insert("big".into(), json!(vec![1; 10_000]));
    let body = Value::Object(body);
    let (listed, omitted) = bounded(
        &v,
        &Request {
            body: Body::Json(&body),
            ..Request::default()
        },
    );
    assert_eq!(omitted, 0);
    let by_loc = |last: &str| {
        listed
            .iter()
            .find(|e| e["loc"].as_array().and_then(|l| l.last()) == Some(&json!(last)))
            .unwrap_or_else(|| panic!("no error at {last}: {listed:?}"))
    };
    // `missing` quotes the enclosing object: a preview of its JSON text.
    let missing = by_loc("name");
    let preview = missing["input"].as_str().expect("a cut object is a string");
    assert!(
        preview.starts_with("{\"nnnn") && preview.ends_with('…'),
        "{preview}"
    );
    assert!(preview.len() <= 2048 + 3);
    // The array value of an unexpected property, cut the same way.
    let big = by_loc("big");
    assert!(big["input"]
        .as_str()
        .is_some_and(|s| s.starts_with("[1,1,1")));
    // A long property name is cut in `loc` and `ctx`, its long value in `input`.
    let cut_name = format!("{}…", &long_name[..256]);
    let long = by_loc(&cut_name);
    assert_eq!(long["ctx"]["unexpected_field"], json!(cut_name));
    assert_eq!(long["input"], json!(format!("{}…", &long_value[..1024])));
    assert!(json_size(&listed) < 12_000, "{}", json_size(&listed));
}

#[test]
fn query_errors_are_bounded_too() {
    let v = compile(SchemaSpec {
        query: Some(json!({"type": "object", "properties": {
            "q": {"type": "string", "maxLength": 3},
            "ids": {"type": "array", "items": {"type": "integer"}}
        }, "additionalProperties": false})),
        ..SchemaSpec::default()
    })
    .with_max_errors(10);
    let mut raw = format!("q={}", "x".repeat(5000));
    for i in 0..2000 {
        raw.push_str(&format!("&k{i}=v&ids=x{i}"));
    }
    let (listed, omitted) = bounded(
        &v,
        &Request {
            query: Some(&raw),
            ..Request::default()
        },
    );
    // 2000 int_parsing errors, then the string and 2000 unknown keys: 4001 in all.
    assert_eq!((listed.len(), omitted), (10, 3991));
    assert!(listed.iter().all(|e| e["type"] == "int_parsing"));
    assert!(json_size(&listed) < 3_000, "{}", json_size(&listed));

    let v = v.with_max_errors(100);
    let long_q = format!("q={}", "x".repeat(5000));
    let (listed, _) = bounded(
        &v,
        &Request {
            query: Some(&long_q),
            ..Request::default()
        },
    );
    assert_eq!(listed[0]["type"], "string_too_long");
    assert_eq!(listed[0]["input"], json!(format!("{}…", "x".repeat(1024))));
}

#[test]
fn header_cookie_and_form_inputs_are_cut() {
    let v = compile(SchemaSpec {
        headers: Some(json!({"type": "object", "properties": {"x-n": {"type": "integer"}}})),
        cookies: Some(json!({"type": "object", "properties": {"s": {"maxLength": 2}}})),
        body: Some(
            json!({"type": "object", "properties": {"f": {"type": "integer"}},
                          "additionalProperties": false}),
        ),
        ..SchemaSpec::default()
    });
    let long = "9x".repeat(3000);
    let cookie = format!("s={long}");
    let form_body = format!("f={long}&other={long}");
    let (listed, omitted) = bounded(
        &v,
        &Request {
            headers: headers(&[("x-n", &long), ("cookie", &cookie)]),
            body: Body::Form(form_body.as_bytes()),
            ..Request::default()
        },
    );
    assert_eq!(omitted, 0);
    let cut = json!(format!("{}…", &long[..1024]));
    let inputs: Vec<_> = listed
        .iter()
        .map(|e| (e["loc"].clone(), e["input"] == cut))
        .collect();
    assert_eq!(
        inputs,
        [
            (json!(["headers", "x-n"]), true),
            (json!(["cookie", "s"]), true),
            (json!(["body", "f"]), true),
            (json!(["body", "other"]), true),
        ]
    );
}

#[test]
fn many_multipart_fields_are_bounded() {
    let v = item_route();
    let mut body = Vec::new();
    for i in 0..15_000 {
        body.extend_from_slice(
            format!(
                "--B\r\nContent-Disposition: form-data; name=\"f{i:05}\"\r\n\r\n{}\r\n",
                "v".repeat(40)
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(b"--B--\r\n");
    let parts = crate::multipart::parse(&body, "B").expect("well-formed");
    let (listed, omitted) = bounded(
        &v,
        &Request {
            body: Body::Multipart(&parts),
            ..Request::default()
        },
    );
    // Two `missing` (name, price) and 15,000 unexpected fields.
    assert_eq!(listed.len() + omitted, 15_002);
    assert_eq!(listed.len(), DEFAULT_MAX_ERRORS);
    assert_eq!(listed[0]["input"], json!("v".repeat(40)));
    assert!(json_size(&listed) < 30_000, "{}", json_size(&listed));
}

#[test]
fn nested_quantifiers_run_in_linear_time() {
    let v = query_route(json!({"s": {"type": "string", "pattern": "^(a+)+$"}}), &[]);
    let hostile = format!("s={}!", "a".repeat(30));
    let errors = query(&v, &hostile).unwrap_err();
    assert_eq!(errors[0]["type"], "string_pattern_mismatch");
    assert_eq!(errors[0]["msg"], "String should match pattern '^(a+)+$'");
    assert!(query(&v, &format!("s={}", "a".repeat(100_000))).is_ok());
}

#[test]
fn backreferences_work_and_their_backtracking_is_cut_off() {
    let v = body_route(json!({"type": "object", "properties": {
        "twice": {"type": "string", "pattern": r"^(\w+)-\1$"},
        "hostile": {"type": "array", "items": {"type": "string", "pattern": r"^(a|a)+\1$"}},
    }}));
    assert!(json_body(&v, &json!({"twice": "ab-ab", "hostile": ["aaa"]})).is_ok());
    let errors = json_body(&v, &json!({"twice": "ab-ba"})).unwrap_err();
    assert_eq!(
        errors[0]["msg"],
        r"String should match pattern '^(\w+)-\1$'"
    );
    // Exponential for a backtracking engine: each value stops at the backtrack limit.
    let hostile: Vec<String> = (0..50)
        .map(|i| format!("{}!", "a".repeat(30 + i)))
        .collect();
    let errors = json_body(&v, &json!({"hostile": hostile})).unwrap_err();
    let first = &errors[0];
    assert_eq!(first["type"], "string_pattern_mismatch");
    assert_eq!(first["loc"], json!(["body", "hostile", 0]));
    assert_eq!(first["ctx"]["pattern"], r"^(a|a)+\1$");
    assert!(
        first["msg"]
            .as_str()
            .is_some_and(|m| m.contains("could not be checked")),
        "{first}"
    );
}

#[test]
fn errors_below_a_long_key_name_it_as_sent() {
    // `dict[str, list[int]]`: jsonschema would give each of the 20,000 errors its own copy
    // of the 50 KB key; the host validates with a stand-in and maps it back.
    let v = body_route(json!({"type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "integer"}}}));
    let key = "k".repeat(50_000);
    let body = json!({"ok": [1], (key.clone()): vec!["x"; 20_000]});
    let (listed, omitted) = bounded(
        &v,
        &Request {
            body: Body::Json(&body),
            ..Request::default()
        },
    );
    assert_eq!((listed.len(), omitted), (100, 19_900));
    let cut = format!("{}…", &key[..256]);
    assert_eq!(
        listed[3],
        json!({"type": "int_parsing", "loc": ["body", cut, 3],
               "msg": "Input should be a valid integer, unable to parse string as an integer",
               "input": "x"})
    );
    // A schema that reads key text still sees the real keys.
    let v = body_route(json!({"type": "object", "propertyNames": {"maxLength": 3},
        "additionalProperties": {"type": "integer"}}));
    let (listed, _) = bounded(
        &v,
        &Request {
            body: Body::Json(&json!({(key.clone()): "x"})),
            ..Request::default()
        },
    );
    let locs: Vec<_> = listed.iter().map(|e| e["loc"].clone()).collect();
    assert_eq!(locs, [json!(["body"]), json!(["body", cut])]);
}
