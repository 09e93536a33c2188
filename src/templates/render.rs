//! Rendering one template's parts (checked when stored: [`crate::model::template::TemplateSpec::check`]) with minijinja in strict mode: every variable a part uses must
//! be given (checked first, so the error names it), and anything undefined met while rendering
//! (`{{ user.city }}` with no `city`) fails the whole render. Nothing half-rendered leaves here.

use crate::model::request::Invalid;
use crate::model::template::{describe, ENV};

/// Render one part of template `name` with `params` (a JSON object).
pub fn render(name: &str, part: &str, source: &str, params: &serde_json::Value) -> Result<String, Invalid> {
    let bad = |e: minijinja::Error| {
        Invalid::new("template_error", "params", format!("template {name:?} ({part}): {}", describe(&e)))
    };
    // Named by its part: minijinja escapes values in an `.html` template, not in text.
    let tmpl = ENV.template_from_named_str(if part == "html" { "part.html" } else { "part.txt" }, source).map_err(bad)?;
    let mut missing: Vec<String> = tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| params.get(v).is_none() && ENV.globals().all(|(g, _)| g != v.as_str()))
        .collect();
    if !missing.is_empty() {
        missing.sort();
        let first = missing[0].clone();
        return Err(Invalid::new(
            "undefined_variable",
            format!("params.{first}"),
            format!("template {name:?} ({part}) uses {} not given in params", missing.join(", ")),
        ));
    }
    tmpl.render(params).map_err(|e| {
        if e.kind() == minijinja::ErrorKind::UndefinedError {
            Invalid::new(
                "undefined_variable",
                "params",
                format!("template {name:?} ({part}): {}", describe(&e)),
            )
        } else {
            bad(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_with_every_variable_given() {
        let out = render("t", "text", "Hi {{ name }}, {{ n }} new", &json!({"name": "Ana", "n": 3})).unwrap();
        assert_eq!(out, "Hi Ana, 3 new");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let e = render("t", "text", "Hi {{ name }} {{ place }}", &json!({"name": "Ana"})).unwrap_err();
        assert_eq!(e.code, "undefined_variable");
        assert_eq!(e.field, "params.place");
        assert!(e.message.contains("place"), "{}", e.message);
    }

    #[test]
    fn an_undefined_attribute_fails_the_whole_render() {
        let e = render("t", "text", "{{ user.city }}", &json!({"user": {"name": "Ana"}})).unwrap_err();
        assert_eq!(e.code, "undefined_variable");
        // Loops and their own variables are not params.
        assert_eq!(render("t", "text", "{% for x in xs %}{{ x }}{% endfor %}", &json!({"xs": [1, 2]})).unwrap(), "12");
    }

}
