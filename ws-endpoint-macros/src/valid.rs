//! Validation of what attributes cannot express in their types: the path template and the
//! subprotocol tokens.

use syn::LitStr;

/// Parses an actix-web path template and returns its parameter names, or an error on the
/// literal saying what is wrong.
pub fn path_template(lit: &LitStr) -> syn::Result<Vec<String>> {
    let path = lit.value();
    let fail = |msg: String| Err(syn::Error::new(lit.span(), msg));
    if !path.starts_with('/') {
        return fail(format!(
            "malformed path template \"{path}\": it must start with `/`"
        ));
    }
    let mut names: Vec<String> = Vec::new();
    let bytes: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '{' => {
                let start = i;
                let mut depth = 1;
                let mut j = i + 1;
                while j < bytes.len() && depth > 0 {
                    match bytes[j] {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                if depth != 0 {
                    return fail(format!(
                        "malformed path template \"{path}\": `{{` at position {start} is never closed"
                    ));
                }
                let inner: String = bytes[start + 1..j - 1].iter().collect();
                let name = inner.split(':').next().unwrap_or("");
                if name.is_empty() {
                    return fail(format!(
                        "malformed path template \"{path}\": empty parameter name at position {start}"
                    ));
                }
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return fail(format!(
                        "malformed path template \"{path}\": parameter name `{name}` may only contain letters, digits and `_`"
                    ));
                }
                if inner.contains(':') && inner.split_once(':').is_some_and(|(_, re)| re.is_empty())
                {
                    return fail(format!(
                        "malformed path template \"{path}\": empty pattern after `{name}:`"
                    ));
                }
                if names.iter().any(|n| n == name) {
                    return fail(format!(
                        "malformed path template \"{path}\": parameter `{name}` appears twice"
                    ));
                }
                names.push(name.to_owned());
                i = j;
                if i < bytes.len() && bytes[i] == '*' && i + 1 != bytes.len() {
                    return fail(format!(
                        "malformed path template \"{path}\": a tail match `{{{name}}}*` must end the path"
                    ));
                }
            }
            '}' => {
                return fail(format!(
                    "malformed path template \"{path}\": `}}` at position {i} has no matching `{{`"
                ))
            }
            _ => i += 1,
        }
    }
    Ok(names)
}

/// A subprotocol must be an RFC 7230 token.
pub fn subprotocol(lit: &LitStr) -> syn::Result<()> {
    let v = lit.value();
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(syn::Error::new(
            lit.span(),
            format!("`{v}` is not a valid subprotocol name (an HTTP token: letters, digits, `.`, `-`, `_`, …)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    fn names(p: &str) -> Result<Vec<String>, String> {
        path_template(&LitStr::new(p, Span::call_site())).map_err(|e| e.to_string())
    }

    #[test]
    fn templates() {
        assert_eq!(names("/chat/{room}").unwrap(), vec!["room"]);
        assert_eq!(names("/a/{id:\\d{3}}/{tail}*").unwrap(), vec!["id", "tail"]);
        assert!(names("/chat/{room").unwrap_err().contains("never closed"));
        assert!(names("chat").unwrap_err().contains("start with"));
        assert!(names("/{a}/{a}").unwrap_err().contains("twice"));
        assert!(names("/{}").unwrap_err().contains("empty"));
        assert!(names("/x}").unwrap_err().contains("no matching"));
        assert!(names("/{a-b}").unwrap_err().contains("letters"));
    }
}
