//! The `Link: <url>; rel="next"` header that Okta's list endpoints use for paging.

use reqwest::header::{HeaderMap, LINK};

/// Returns the target of the `rel="next"` link, whether the links come as several header
/// lines or as one comma-separated line.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(link_values)
        .find(|(_, params)| has_next_relation(params))
        .map(|(target, _)| target.to_owned())
}

/// Splits one header line into `(target, parameters)` pairs. A target is the text between
/// `<` and `>`, so a comma inside it does not split the value.
fn link_values(line: &str) -> Vec<(&str, &str)> {
    let mut values = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>').map(|i| open + i) else {
            break;
        };
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        values.push((target, &after[..params_end]));
        rest = &after[params_end..];
    }
    values
}

fn has_next_relation(params: &str) -> bool {
    params
        .split([';', ','])
        .filter_map(|param| param.trim().split_once('='))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case("rel"))
        .any(|(_, value)| {
            value
                .trim()
                .trim_matches('"')
                .split_ascii_whitespace()
                .any(|relation| relation.eq_ignore_ascii_case("next"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(LINK, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    #[test]
    fn next_found_on_separate_lines() {
        let map = headers(&[
            r#"<https://o.example/oauth2/v1/clients?limit=200>; rel="self""#,
            r#"<https://o.example/oauth2/v1/clients?after=abc&limit=200>; rel="next""#,
        ]);
        assert_eq!(
            next_link(&map).as_deref(),
            Some("https://o.example/oauth2/v1/clients?after=abc&limit=200")
        );
    }

    #[test]
    fn next_found_in_comma_list() {
        let map = headers(&[
            r#"<https://o.example/a?x=1,2>; rel="self", <https://o.example/b>; rel=next"#,
        ]);
        assert_eq!(next_link(&map).as_deref(), Some("https://o.example/b"));
    }

    #[test]
    fn next_absent_on_last_page() {
        let map = headers(&[r#"<https://o.example/a>; rel="self""#]);
        assert_eq!(next_link(&map), None);
    }
}
