//! `publish`: validate request messages and publish them with publisher confirms.
//!
//! Every request in every input is validated before anything is sent, so a file with one bad
//! request publishes nothing. Each request is published to the request exchange with its
//! `requestId` as `message_id`, persistent, with `mandatory` set, and counts as published only
//! once the broker confirmed it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use crate::broker::{self, publisher::json_properties, ConfirmedPublisher};
use crate::contract::{self, Job, NameTemplate};
use crate::settings::BrokerSettings;

/// One request read from an input, with where it came from.
pub struct Input {
    /// `FILE:N` (N counts requests from 1) for messages.
    pub origin: String,
    pub body: Vec<u8>,
}

/// A request that passed validation.
pub struct Validated {
    pub origin: String,
    pub request_id: String,
    pub credential_id: String,
    pub job: Job,
    pub body: Vec<u8>,
}

/// Reads, validates and publishes the requests in `files` (stdin when empty or `-`).
pub async fn run(settings: &BrokerSettings, files: &[PathBuf]) -> ExitCode {
    let inputs = match read_all(files) {
        Ok(inputs) => inputs,
        Err(message) => {
            eprintln!("okta-dcr-worker publish: {message}");
            return ExitCode::from(2);
        }
    };
    let template = match name_template() {
        Ok(template) => template,
        Err(message) => {
            eprintln!("okta-dcr-worker publish: {message}");
            return ExitCode::from(2);
        }
    };
    let (valid, invalid) = validate_all(&inputs, &template, settings.max_body_bytes);
    for (origin, reason) in &invalid {
        println!("invalid   {origin}: {reason}");
    }
    if !invalid.is_empty() {
        println!(
            "0 published, {} invalid, {} not sent: fix the invalid requests and publish again",
            invalid.len(),
            valid.len()
        );
        return ExitCode::FAILURE;
    }
    if valid.is_empty() {
        println!("0 published: the input holds no requests");
        return ExitCode::FAILURE;
    }
    publish_all(settings, &valid).await
}

/// Validates every input the way the worker will, and returns the valid ones and the
/// reasons of the invalid ones.
pub fn validate_all(
    inputs: &[Input],
    template: &NameTemplate,
    max_body_bytes: usize,
) -> (Vec<Validated>, Vec<(String, String)>) {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for input in inputs {
        match validate(input, template, max_body_bytes) {
            Ok(validated) => valid.push(validated),
            Err(reason) => invalid.push((input.origin.clone(), reason)),
        }
    }
    (valid, invalid)
}

fn validate(
    input: &Input,
    template: &NameTemplate,
    max_body_bytes: usize,
) -> Result<Validated, String> {
    let envelope = contract::decode(&input.body, None, None, max_body_bytes)
        .map_err(|error| format!("{} ({})", error.reason(), error.code()))?;
    let request = contract::parse_request(&envelope).map_err(|error| error.to_string())?;
    if request.job == Job::Provision {
        contract::build_registration(&request, template).map_err(|error| error.to_string())?;
    }
    Ok(Validated {
        origin: input.origin.clone(),
        request_id: request.request_id.clone(),
        credential_id: request.id.clone(),
        job: request.job,
        body: input.body.clone(),
    })
}

async fn publish_all(settings: &BrokerSettings, requests: &[Validated]) -> ExitCode {
    let connection = match broker::connect(&settings.amqp_url, "publish").await {
        Ok(connection) => connection,
        Err(error) => {
            eprintln!("okta-dcr-worker publish: cannot connect to RabbitMQ (AMQP_URL): {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = broker::declare_topology(&connection, &settings.topology).await {
        eprintln!("okta-dcr-worker publish: {error}");
        return ExitCode::FAILURE;
    }
    let publisher = match ConfirmedPublisher::open(&connection, settings.confirm_timeout).await {
        Ok(publisher) => publisher,
        Err(error) => {
            eprintln!("okta-dcr-worker publish: cannot open a channel: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = 0;
    for request in requests {
        let properties = json_properties().with_message_id(request.request_id.as_str().into());
        let outcome = publisher
            .publish(
                &settings.topology.request_exchange,
                &settings.topology.request_queue,
                &request.body,
                properties,
            )
            .await;
        match outcome {
            Ok(()) => println!(
                "published {}: requestId {} {} credential {}",
                request.origin,
                request.request_id,
                request.job.as_str(),
                request.credential_id
            ),
            Err(error) => {
                failed += 1;
                println!(
                    "failed    {}: requestId {}: {error}",
                    request.origin, request.request_id
                );
            }
        }
    }
    let _ = connection.close(200, "published".into()).await;
    println!(
        "{} published, 0 invalid, {failed} failed",
        requests.len() - failed
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn name_template() -> Result<NameTemplate, String> {
    match std::env::var("OKTA_DCR_CLIENT_NAME_TEMPLATE") {
        Ok(template) if !template.trim().is_empty() => NameTemplate::parse(template.trim())
            .map_err(|error| format!("invalid setting OKTA_DCR_CLIENT_NAME_TEMPLATE: {error}")),
        _ => Ok(NameTemplate::default()),
    }
}

/// Reads every request from `paths`: files, folders (their `*.json` and `*.ndjson` files, by
/// name), and stdin when the list is empty or an entry is `-`.
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<Input>, String> {
    let stdin = [PathBuf::from("-")];
    let paths = if paths.is_empty() { &stdin[..] } else { paths };
    let mut inputs = Vec::new();
    for file in expand(paths)? {
        let (name, text) = read_source(&file)?;
        inputs.extend(split_requests(&name, &text)?);
    }
    Ok(inputs)
}

/// Expands folders into their `*.json` and `*.ndjson` files, sorted by name.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(json_files(path)?);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn json_files(folder: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(folder)
        .map_err(|error| format!("cannot read {}: {error}", folder.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            matches!(
                path.extension().and_then(|extension| extension.to_str()),
                Some("json" | "ndjson")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_source(file: &Path) -> Result<(String, Vec<u8>), String> {
    if file == Path::new("-") {
        let mut text = Vec::new();
        std::io::stdin()
            .read_to_end(&mut text)
            .map_err(|error| format!("cannot read stdin: {error}"))?;
        return Ok(("stdin".to_owned(), text));
    }
    let text =
        std::fs::read(file).map_err(|error| format!("cannot read {}: {error}", file.display()))?;
    Ok((file.display().to_string(), text))
}

/// Splits one input into request bodies: a JSON object is one request, a JSON array is one
/// request per element, and anything else is read as NDJSON (one request per non-empty line).
pub fn split_requests(name: &str, text: &[u8]) -> Result<Vec<Input>, String> {
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let input = |index: usize, body: Vec<u8>| Input {
        origin: format!("{name}:{}", index + 1),
        body,
    };
    let first_line = text.split(|byte| *byte == b'\n').next().unwrap_or_default();
    let one_document = serde_json::from_slice::<Value>(first_line).is_err();
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items
            .iter()
            .enumerate()
            .map(|(index, item)| input(index, item.to_string().into_bytes()))
            .collect()),
        Ok(Value::Object(_)) => Ok(vec![input(0, text.to_vec())]),
        // A first line that is not JSON on its own means one document spread over several
        // lines (pretty-printed JSON): it is one request, reported once if it is invalid.
        Err(_) if one_document && !text.trim_ascii().is_empty() => {
            Ok(vec![input(0, text.to_vec())])
        }
        _ => Ok(text
            .split(|byte| *byte == b'\n')
            .map(|line| line.trim_ascii())
            .filter(|line| !line.is_empty())
            .enumerate()
            .map(|(index, line)| input(index, line.to_vec()))
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_one_request() {
        let inputs = split_requests("f", br#"{"requestId": "r1"}"#).unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].origin, "f:1");
    }

    #[test]
    fn array_is_one_request_per_element() {
        let inputs = split_requests("f", br#"[{"requestId": "r1"}, {"requestId": "r2"}]"#).unwrap();
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[1].origin, "f:2");
        assert_eq!(inputs[1].body, br#"{"requestId":"r2"}"#);
    }

    #[test]
    fn ndjson_is_one_request_per_line() {
        let text = b"{\"requestId\": \"r1\"}\n\n{\"requestId\": \"r2\"}\n";
        let inputs = split_requests("f", text).unwrap();
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[1].body, br#"{"requestId": "r2"}"#);
    }

    #[test]
    fn pretty_printed_invalid_file_is_one_request() {
        let text = b"{\n  \"requestId\": \"r1\"\n  \"operation\": \"provision\"\n}\n";
        let inputs = split_requests("f", text).unwrap();
        assert_eq!(inputs.len(), 1);
    }

    #[test]
    fn byte_order_mark_ignored() {
        let inputs = split_requests("f", b"\xef\xbb\xbf{\"requestId\": \"r1\"}").unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].body, br#"{"requestId": "r1"}"#);
    }

    #[test]
    fn invalid_line_reported_with_origin() {
        let text = b"{\"requestId\": \"r1\"}\n{\"requestId\": \n";
        let inputs = split_requests("f", text).unwrap();
        let (_, invalid) = validate_all(&inputs, &NameTemplate::default(), 1024);
        assert_eq!(invalid.len(), 2);
        assert_eq!(invalid[1].0, "f:2");
        assert!(invalid[1].1.contains("invalid_json"), "{}", invalid[1].1);
    }
}
