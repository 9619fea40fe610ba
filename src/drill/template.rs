//! Placeholders in provider templates, probe bodies and notifications.
//!
//! Plain `{name}` replacement: templates hold config fragments and JSON, where a full
//! template language would only add escaping rules to get wrong.

/// The values a template may name.
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    pub target: &'a str,
    pub region: &'a str,
    pub endpoint: &'a str,
    pub playbook: &'a str,
    pub mode: &'a str,
}

/// `text` with `{target}`, `{region}`, `{endpoint}`, `{playbook}` and `{mode}` replaced.
pub fn render(text: &str, vars: &Vars) -> String {
    [
        ("{target}", vars.target),
        ("{region}", vars.region),
        ("{endpoint}", vars.endpoint),
        ("{playbook}", vars.playbook),
        ("{mode}", vars.mode),
    ]
    .iter()
    .fold(text.to_string(), |acc, (key, value)| acc.replace(key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_placeholder_and_leaves_other_braces() {
        let vars = Vars {
            target: "server 10.0.0.2:80;",
            region: "b",
            endpoint: "api",
            ..Vars::default()
        };
        let got = render("upstream {endpoint} { {target} } # {region} {other}", &vars);
        assert_eq!(got, "upstream api { server 10.0.0.2:80; } # b {other}");
    }
}
