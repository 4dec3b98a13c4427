//! The Okta client name: rendered from a template so that the same credential always gets
//! the same name, which is how the worker finds a client when a request has no
//! `idpClientId`.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::error::ValidationError;
use super::request::Request;

/// Maximum client name length in characters (Unicode scalar values).
pub const MAX_CLIENT_NAME_CHARS: usize = 100;

/// The default template: application, team and credential name, then a short hash of the
/// credential id, such as `Shop Payments checkout-key 3f2a9c0d1e`. Without a team the team
/// part is left out, giving `Shop checkout-key 3f2a9c0d1e`.
pub const DEFAULT_NAME_TEMPLATE: &str = "{application} {team} {credential} {idShort}";

/// Length of `{idShort}` in hex characters (40 bits of SHA-256).
pub const ID_SHORT_HEX_CHARS: usize = 10;

/// A placeholder in a client name template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{application}`: `managedApplicationName`.
    Application,
    /// `{team}`: `teamName`, empty when absent.
    Team,
    /// `{credential}`: the credential `name`.
    Credential,
    /// `{id}`: the Engage credential `id`.
    Id,
    /// `{idShort}`: the first 10 hex characters of SHA-256 of the credential `id`.
    IdShort,
}

impl Placeholder {
    const ALL: [Placeholder; 5] = [
        Self::Application,
        Self::Team,
        Self::Credential,
        Self::Id,
        Self::IdShort,
    ];

    /// Returns the name written between braces.
    pub fn name(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::Team => "team",
            Self::Credential => "credential",
            Self::Id => "id",
            Self::IdShort => "idShort",
        }
    }

    /// Returns the request field the placeholder reads.
    fn request_field(self) -> &'static str {
        match self {
            Self::Application => "managedApplicationName",
            Self::Team => "teamName",
            Self::Credential => "name",
            Self::Id | Self::IdShort => "id",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|placeholder| placeholder.name() == name)
    }
}

/// Errors from parsing a client name template. Positions count characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder name other than the five known ones.
    #[error(
        "unknown placeholder `{{{0}}}` in the client name template; use {{application}}, \
         {{team}}, {{credential}}, {{id}} or {{idShort}}"
    )]
    UnknownPlaceholder(String),
    /// A `{` without its `}`.
    #[error("unclosed `{{` at position {0} of the client name template")]
    UnclosedBrace(usize),
    /// A `}` without its `{`.
    #[error("unmatched `}}` at position {0} of the client name template")]
    UnmatchedClosingBrace(usize),
    /// A control character in the literal text.
    #[error("control character at position {0} of the client name template")]
    ControlCharacter(usize),
    /// Neither `{id}` nor `{idShort}`, so two credentials could get the same name.
    #[error(
        "the client name template must contain {{id}} or {{idShort}}, so that every \
         credential gets its own client name"
    )]
    MissingIdPlaceholder,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// A parsed client name template. Literal text may contain anything but braces and control
/// characters; there is no escape for braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    source: String,
    segments: Vec<Segment>,
}

/// The request fields a client name is rendered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameFields<'a> {
    /// `managedApplicationName`.
    pub application: Option<&'a str>,
    /// `teamName`.
    pub team: Option<&'a str>,
    /// The credential `name`.
    pub credential: Option<&'a str>,
    /// The credential `id`.
    pub id: &'a str,
}

impl NameTemplate {
    /// Parses a template, rejecting unknown placeholders, unbalanced braces, control
    /// characters and templates without `{id}` or `{idShort}`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let segments = parse_segments(template)?;
        let has_id = segments.iter().any(|segment| {
            matches!(
                segment,
                Segment::Placeholder(Placeholder::Id | Placeholder::IdShort)
            )
        });
        if !has_id {
            return Err(TemplateError::MissingIdPlaceholder);
        }
        Ok(Self {
            source: template.to_owned(),
            segments,
        })
    }

    /// Returns the template text.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Reports whether the template contains a placeholder.
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.segments.contains(&Segment::Placeholder(placeholder))
    }

    /// Renders a client name.
    ///
    /// Runs of spaces collapse to one and leading or trailing spaces are dropped, so an
    /// absent team leaves no gap. The result is a pure function of the template and the
    /// fields. It is rejected when a used field other than `{team}` is absent, when it
    /// contains a control character, or when it is longer than [`MAX_CLIENT_NAME_CHARS`].
    pub fn render(&self, fields: &NameFields<'_>) -> Result<String, ValidationError> {
        self.check_required(fields)?;
        let mut rendered = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => rendered.push_str(text),
                Segment::Placeholder(placeholder) => {
                    rendered.push_str(&placeholder_value(*placeholder, fields))
                }
            }
        }
        let name = collapse_spaces(&rendered);
        check_client_name(
            &name,
            "client_name",
            "shorten `name`, `managedApplicationName` or `teamName`, or the client name template",
        )?;
        Ok(name)
    }

    fn check_required(&self, fields: &NameFields<'_>) -> Result<(), ValidationError> {
        let missing: Vec<&str> = [
            (Placeholder::Credential, fields.credential),
            (Placeholder::Application, fields.application),
        ]
        .into_iter()
        .filter(|(placeholder, value)| self.uses(*placeholder) && value.is_none())
        .map(|(placeholder, _)| placeholder.request_field())
        .collect();
        let Some(first) = missing.first() else {
            return Ok(());
        };
        let listed: Vec<String> = missing.iter().map(|field| format!("`{field}`")).collect();
        Err(ValidationError::missing(
            *first,
            format!(
                "the client name template `{}` needs {} to name or find the Okta client",
                self.source,
                listed.join(" and ")
            ),
        ))
    }
}

impl Default for NameTemplate {
    /// Returns [`DEFAULT_NAME_TEMPLATE`].
    fn default() -> Self {
        let space = || Segment::Literal(" ".to_owned());
        Self {
            source: DEFAULT_NAME_TEMPLATE.to_owned(),
            segments: vec![
                Segment::Placeholder(Placeholder::Application),
                space(),
                Segment::Placeholder(Placeholder::Team),
                space(),
                Segment::Placeholder(Placeholder::Credential),
                space(),
                Segment::Placeholder(Placeholder::IdShort),
            ],
        }
    }
}

impl FromStr for NameTemplate {
    type Err = TemplateError;

    fn from_str(template: &str) -> Result<Self, Self::Err> {
        Self::parse(template)
    }
}

impl fmt::Display for NameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Renders the Okta client name of a request, for any job. `credentialData.client_name` is
/// not used: the template alone decides the name, so that the name can be rendered again
/// from a deprovision or update request, which carries no `credentialData`.
pub fn client_name(request: &Request, template: &NameTemplate) -> Result<String, ValidationError> {
    template.render(&NameFields {
        application: request.managed_application_name.as_deref(),
        team: request.team_name.as_deref(),
        credential: request.name.as_deref(),
        id: &request.id,
    })
}

/// Returns the first [`ID_SHORT_HEX_CHARS`] lowercase hex characters of SHA-256 of `id`.
pub fn id_short(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    hex[..ID_SHORT_HEX_CHARS].to_owned()
}

/// Checks a client name: at most [`MAX_CLIENT_NAME_CHARS`] characters, no control
/// characters, not empty. `hint` ends the message of a name that is too long and names what
/// to shorten.
pub(crate) fn check_client_name(
    name: &str,
    field: &str,
    hint: &str,
) -> Result<(), ValidationError> {
    if name.chars().any(char::is_control) {
        return Err(ValidationError::invalid(
            field,
            name,
            "the client name must not contain control characters; remove them from the fields \
             it is built from"
                .to_owned(),
        ));
    }
    let length = name.chars().count();
    if length > MAX_CLIENT_NAME_CHARS {
        return Err(ValidationError::invalid(
            field,
            name,
            format!(
                "the client name is {length} characters, more than the maximum of \
                 {MAX_CLIENT_NAME_CHARS}; {hint}"
            ),
        ));
    }
    if name.trim().is_empty() {
        return Err(ValidationError::invalid(
            field,
            name,
            "the client name is empty",
        ));
    }
    Ok(())
}

fn placeholder_value(placeholder: Placeholder, fields: &NameFields<'_>) -> String {
    let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
    match placeholder {
        Placeholder::Application => text(fields.application),
        Placeholder::Team => text(fields.team),
        Placeholder::Credential => text(fields.credential),
        Placeholder::Id => fields.id.to_owned(),
        Placeholder::IdShort => id_short(fields.id),
    }
}

fn collapse_spaces(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').filter(|word| !word.is_empty()).collect();
    words.join(" ")
}

fn parse_segments(template: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = template;
    // Character position of `rest` in the template, counted from 1, for error messages.
    let mut position = 1;
    while !rest.is_empty() {
        let literal_end = rest.find(['{', '}']).unwrap_or(rest.len());
        let literal = &rest[..literal_end];
        if let Some(offset) = literal.chars().position(char::is_control) {
            return Err(TemplateError::ControlCharacter(position + offset));
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal.to_owned()));
        }
        position += literal.chars().count();
        rest = &rest[literal_end..];
        if rest.starts_with('}') {
            return Err(TemplateError::UnmatchedClosingBrace(position));
        }
        if rest.is_empty() {
            break;
        }
        let Some(close) = rest.find('}') else {
            return Err(TemplateError::UnclosedBrace(position));
        };
        let name = &rest[1..close];
        let placeholder = Placeholder::parse(name)
            .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_owned()))?;
        segments.push(Segment::Placeholder(placeholder));
        position += name.chars().count() + 2;
        rest = &rest[close + 1..];
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8a2b3c4d-0000-4000-8000-000000000001";

    fn fields<'a>(team: Option<&'a str>, credential: &'a str) -> NameFields<'a> {
        NameFields {
            application: Some("Shop"),
            team,
            credential: Some(credential),
            id: ID,
        }
    }

    #[test]
    fn default_matches_parsed_default() {
        let parsed = NameTemplate::parse(DEFAULT_NAME_TEMPLATE).unwrap();
        assert_eq!(parsed, NameTemplate::default());
    }

    #[test]
    fn default_renders_all_parts() {
        let name = NameTemplate::default()
            .render(&fields(Some("Payments"), "checkout-key"))
            .unwrap();
        assert_eq!(name, format!("Shop Payments checkout-key {}", id_short(ID)));
    }

    #[test]
    fn default_without_team_leaves_no_gap() {
        let name = NameTemplate::default()
            .render(&fields(None, "checkout-key"))
            .unwrap();
        assert_eq!(name, format!("Shop checkout-key {}", id_short(ID)));
    }

    #[test]
    fn render_is_deterministic() {
        let template = NameTemplate::default();
        let first = template.render(&fields(Some("Payments"), "key")).unwrap();
        let second = template.render(&fields(Some("Payments"), "key")).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn different_ids_give_different_names() {
        let template = NameTemplate::default();
        let mut other = fields(None, "key");
        other.id = "8a2b3c4d-0000-4000-8000-000000000002";
        let first = template.render(&fields(None, "key")).unwrap();
        let second = template.render(&other).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn id_short_is_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(id_short("abc"), "ba7816bf8f");
    }

    #[test]
    fn custom_template_with_id() {
        let template = NameTemplate::parse("engage-{id}").unwrap();
        let name = template.render(&fields(None, "key")).unwrap();
        assert_eq!(name, format!("engage-{ID}"));
    }

    #[test]
    fn name_of_100_chars_accepted() {
        let credential = "c".repeat(100 - "Shop ".len() - 1 - ID_SHORT_HEX_CHARS);
        let name = NameTemplate::default()
            .render(&fields(None, &credential))
            .unwrap();
        assert_eq!(name.chars().count(), MAX_CLIENT_NAME_CHARS);
    }

    #[test]
    fn name_of_101_chars_rejected() {
        let credential = "c".repeat(101 - "Shop ".len() - 1 - ID_SHORT_HEX_CHARS);
        let error = NameTemplate::default()
            .render(&fields(None, &credential))
            .unwrap_err();
        assert_eq!(error.field, "client_name");
        assert!(error.message.contains("101 characters"), "{error}");
        assert!(error.message.contains("shorten"), "{error}");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let credential = "é".repeat(100 - "Shop ".len() - 1 - ID_SHORT_HEX_CHARS);
        let name = NameTemplate::default().render(&fields(None, &credential));
        assert!(name.is_ok());
    }

    #[test]
    fn control_character_rejected() {
        let error = NameTemplate::default()
            .render(&fields(Some("Pay\nments"), "key"))
            .unwrap_err();
        assert!(error.message.contains("control characters"), "{error}");
        assert!(error.value.unwrap_or_default().contains("Pay\\nments"));
    }

    #[test]
    fn missing_fields_named() {
        let error = NameTemplate::default()
            .render(&NameFields {
                application: None,
                team: None,
                credential: None,
                id: ID,
            })
            .unwrap_err();
        assert_eq!(error.field, "name");
        assert!(
            error
                .message
                .contains("`name` and `managedApplicationName`"),
            "{error}"
        );
    }

    #[test]
    fn unused_fields_not_required() {
        let template = NameTemplate::parse("{id}").unwrap();
        let name = template.render(&NameFields {
            application: None,
            team: None,
            credential: None,
            id: ID,
        });
        assert_eq!(name.as_deref(), Ok(ID));
    }

    #[test]
    fn unknown_placeholder_rejected() {
        let error = NameTemplate::parse("{app} {id}").unwrap_err();
        assert_eq!(error, TemplateError::UnknownPlaceholder("app".to_owned()));
    }

    #[test]
    fn template_without_id_rejected() {
        let error = NameTemplate::parse("{application} {credential}").unwrap_err();
        assert_eq!(error, TemplateError::MissingIdPlaceholder);
    }

    #[test]
    fn unclosed_brace_rejected() {
        let error = NameTemplate::parse("{id} {team").unwrap_err();
        assert_eq!(error, TemplateError::UnclosedBrace(6));
    }

    #[test]
    fn stray_closing_brace_rejected() {
        let error = NameTemplate::parse("{id}}").unwrap_err();
        assert_eq!(error, TemplateError::UnmatchedClosingBrace(5));
    }

    #[test]
    fn template_control_character_rejected() {
        let error = NameTemplate::parse("{id}\t{team}").unwrap_err();
        assert_eq!(error, TemplateError::ControlCharacter(5));
    }

    #[test]
    fn template_reports_placeholders() {
        let template = NameTemplate::parse("{team}-{idShort}").unwrap();
        assert!(template.uses(Placeholder::Team));
        assert!(!template.uses(Placeholder::Credential));
    }

    #[test]
    fn template_displays_source() {
        let template: NameTemplate = "x {idShort}".parse().unwrap();
        assert_eq!(template.to_string(), "x {idShort}");
    }
}
