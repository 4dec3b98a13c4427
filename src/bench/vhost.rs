//! A RabbitMQ virtual host of the benchmark's own, created and deleted with `rabbitmqctl`.

use std::process::Command;

use crate::secret::Secret;

/// The virtual host a benchmark runs in.
pub struct BenchVhost {
    /// `AMQP_URL` pointing at the virtual host.
    pub amqp_url: Secret,
    /// Virtual host name.
    pub name: String,
    /// Whether the benchmark created the virtual host and deletes it at the end.
    created: bool,
}

impl BenchVhost {
    /// Creates the virtual host `name` and grants the URL's user full permissions on it.
    pub fn create(base_url: &Secret, name: &str) -> Result<Self, String> {
        let url = url_for_vhost(base_url, name)?;
        let user = user_of(base_url)?;
        rabbitmqctl(&["add_vhost", name])?;
        let vhost = Self {
            amqp_url: url,
            name: name.to_owned(),
            created: true,
        };
        rabbitmqctl(&["set_permissions", "-p", name, &user, ".*", ".*", ".*"])?;
        Ok(vhost)
    }

    /// Uses the existing virtual host `name`, which stays when the benchmark ends.
    pub fn existing(base_url: &Secret, name: &str) -> Result<Self, String> {
        Ok(Self {
            amqp_url: url_for_vhost(base_url, name)?,
            name: name.to_owned(),
            created: false,
        })
    }

    /// Deletes the virtual host if the benchmark created it.
    pub fn delete(&self) -> Result<(), String> {
        if self.created {
            rabbitmqctl(&["delete_vhost", &self.name])?;
        }
        Ok(())
    }
}

/// Returns `base` with its path replaced by the virtual host `name`.
fn url_for_vhost(base: &Secret, name: &str) -> Result<Secret, String> {
    let mut url = url::Url::parse(base.expose())
        .map_err(|error| format!("AMQP_URL is not a URL: {error}"))?;
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    url.set_path(&format!("/{encoded}"));
    Ok(Secret::new(url.to_string()))
}

fn user_of(base: &Secret) -> Result<String, String> {
    let url = url::Url::parse(base.expose())
        .map_err(|error| format!("AMQP_URL is not a URL: {error}"))?;
    let user = url.username();
    Ok(if user.is_empty() {
        "guest".to_owned()
    } else {
        user.to_owned()
    })
}

/// Runs `rabbitmqctl` (or `$RABBITMQCTL`) with `args`.
fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let program = std::env::var("RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".to_owned());
    let output = Command::new(&program)
        .args(args)
        .output()
        .map_err(|error| format!("cannot run {program}: {error}; use --vhost to name an existing virtual host instead"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_url_keeps_credentials_and_encodes_the_name() {
        let base = Secret::new("amqp://user:pw@127.0.0.1:5672/%2f?heartbeat=5".to_owned());
        let url = url_for_vhost(&base, "okta-dcr-bench/1").unwrap();
        assert_eq!(
            url.expose(),
            "amqp://user:pw@127.0.0.1:5672/okta-dcr-bench%2F1?heartbeat=5"
        );
        assert_eq!(user_of(&base).unwrap(), "user");
    }

    #[test]
    fn url_without_user_means_guest() {
        let base = Secret::new("amqp://127.0.0.1:5672".to_owned());
        assert_eq!(user_of(&base).unwrap(), "guest");
        assert_eq!(
            url_for_vhost(&base, "v").unwrap().expose(),
            "amqp://127.0.0.1:5672/v"
        );
    }
}
