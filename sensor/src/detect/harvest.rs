//! Harvesting the secrets a workspace holds, so their exact values can be recognised when
//! they leave: environment variables at exec (`CODER_AGENT_TOKEN`, `GITHUB_TOKEN`,
//! `*_TOKEN`, `*_SECRET`, `*_KEY`, …) and credential files (`.git-credentials`,
//! `gh/hosts.yml`, `.docker/config.json`, `.npmrc`, `.pypirc`, `.netrc`, `.aws/credentials`,
//! kube config, `/run/secrets/*`, Coder's session/agent token files). Values come back in
//! `Zeroizing` buffers.

use base64::Engine as _;
use zeroize::Zeroizing;

use super::learned::SecretMeta;

/// A harvested value with its metadata.
pub type Harvested = (Zeroizing<Vec<u8>>, SecretMeta);

fn meta(source: String, provider: &str, kind: &str, issuers: &[&str], revoke: &str) -> SecretMeta {
    SecretMeta {
        source,
        provider: provider.into(),
        kind: kind.into(),
        issuers: issuers.iter().map(|s| s.to_string()).collect(),
        revoke: revoke.into(),
    }
}

/// Does an environment variable name denote a secret?
pub fn is_secret_env(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    if matches!(
        n.as_str(),
        "CODER_AGENT_TOKEN"
            | "GITHUB_TOKEN"
            | "GH_TOKEN"
            | "GITLAB_TOKEN"
            | "NPM_TOKEN"
            | "CODER_SESSION_TOKEN"
    ) {
        return true;
    }
    let secretish = [
        "_TOKEN",
        "_SECRET",
        "_KEY",
        "_PASSWORD",
        "_PASSWD",
        "_API_KEY",
        "_ACCESS_KEY",
        "_PAT",
        "_CREDENTIALS",
    ];
    let exclude = ["_FILE", "_PATH", "_ID", "_URL", "_NAME", "_TYPE"];
    secretish.iter().any(|s| n.ends_with(s)) && !exclude.iter().any(|s| n.ends_with(s))
        || n.contains("SECRET")
}

/// A value worth learning: long enough, not a path/URL/boolean, some variety.
fn plausible(v: &str) -> bool {
    let v = v.trim();
    v.len() >= 8
        && v.len() <= 8192
        && !v.starts_with('/')
        && !v.contains("://")
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "changeme" | "password"
        )
        && v.bytes().collect::<std::collections::HashSet<_>>().len() >= 5
}

fn env_provider(
    name: &str,
) -> (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
) {
    let n = name.to_ascii_uppercase();
    if n.starts_with("CODER_AGENT_TOKEN") {
        ("coder", "agent_token", &[], "webhook")
    } else if n.starts_with("CODER") {
        ("coder", "session_token", &[], "coder_key_delete")
    } else if n.starts_with("GITHUB") || n.starts_with("GH_") {
        (
            "github",
            "token",
            &["github.com", "api.github.com", "*.githubusercontent.com"],
            "github_credentials_revoke",
        )
    } else if n.starts_with("GITLAB") || n.starts_with("CI_JOB") {
        (
            "gitlab",
            "token",
            &["gitlab.com", "*.gitlab.com"],
            "gitlab_pat_self",
        )
    } else if n.starts_with("NPM") {
        ("npm", "token", &["registry.npmjs.org"], "webhook")
    } else if n.starts_with("AWS") {
        ("aws", "credential", &["*.amazonaws.com"], "webhook")
    } else {
        ("workspace", "secret", &[], "webhook")
    }
}

/// Host part of a URL ("https://coder.corp:8443/x" → "coder.corp").
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Issuer hosts an environment names, by provider: the Coder deployment
/// (`CODER_AGENT_URL`, `CODER_URL`) and a GitHub Enterprise server (`GITHUB_SERVER_URL`,
/// `GITHUB_API_URL`). Tokens of that provider sent there are normal use.
pub fn env_issuers(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (provider, names) in [
        ("coder", &["CODER_AGENT_URL", "CODER_URL"][..]),
        ("github", &["GITHUB_SERVER_URL", "GITHUB_API_URL"][..]),
    ] {
        for n in names {
            if let Some(h) = env
                .iter()
                .find(|(k, _)| k == n)
                .and_then(|(_, v)| url_host(v))
            {
                out.push((provider.to_string(), h));
            }
        }
    }
    out
}

/// The password of a URI with credentials (`postgres://user:pass@host/db`): the
/// percent-decoded secret, the provider its scheme names, and the host (its issuer).
pub fn uri_password(v: &str) -> Option<(Zeroizing<Vec<u8>>, &'static str, String)> {
    let (scheme, rest) = v.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (cred, hostport) = authority.rsplit_once('@')?;
    let (_, pass) = cred.split_once(':')?;
    let host = url_host(v)?;
    let pass = Zeroizing::new(crate::detect::engine::percent_decode(pass.as_bytes()));
    let base = scheme
        .split('+')
        .next()
        .unwrap_or(scheme)
        .to_ascii_lowercase();
    let provider = match base.as_str() {
        "postgres" | "postgresql" | "pgsql" => "postgres",
        "mysql" | "mysqlx" | "mariadb" => "mysql",
        "mongodb" => "mongodb",
        "redis" | "rediss" | "valkey" => "redis",
        "amqp" | "amqps" => "rabbitmq",
        "mssql" | "sqlserver" => "mssql",
        "http" | "https" => "http_basic",
        _ => "uri",
    };
    let _ = hostport;
    (pass.len() >= 6).then_some((pass, provider, host))
}

/// Secrets in an environment (`NAME=value` pairs as passed to execve). Issuers named by
/// the environment itself (the Coder deployment URL, a GitHub Enterprise server) are added
/// to the matching secrets, so a token going to its own control plane is not an alert.
/// The password inside any URI with credentials (`DATABASE_URL=postgres://u:p@db/app`)
/// is learned whatever the variable's name.
pub fn from_env(env: &[(String, String)]) -> Vec<Harvested> {
    let named = env_issuers(env);
    let mut out = Vec::new();
    for (k, v) in env {
        if let Some((pass, provider, host)) = uri_password(v) {
            out.push((
                pass,
                meta(
                    format!("env:{k}"),
                    provider,
                    "connection_password",
                    &[host.as_str()],
                    "webhook",
                ),
            ));
            continue;
        }
        if is_secret_env(k) && plausible(v) {
            let (p, kind, iss, rev) = env_provider(k);
            let mut m = meta(format!("env:{k}"), p, kind, iss, rev);
            for h in named
                .iter()
                .filter(|(provider, _)| provider == p)
                .map(|(_, h)| h)
            {
                if !m.issuers.contains(h) {
                    m.issuers.push(h.clone());
                }
            }
            out.push((Zeroizing::new(v.trim().as_bytes().to_vec()), m));
        }
    }
    out
}

/// Secrets that a command line assigns by name: `NAME=value` words with a secret-looking
/// NAME, whole arguments (`env API_TOKEN=…`, `docker run -e GITHUB_TOKEN=…`) or inside one
/// (`sh -c "API_TOKEN=… cmd"`), and `--token value` / `--token=value` style options.
pub fn from_argv(argv: &[String]) -> Vec<Harvested> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        for word in arg.split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|') {
            let word = word.trim_matches(['"', '\'']);
            if let Some((k, v)) = word.split_once('=') {
                let k = k.trim_start_matches('-').replace('-', "_");
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    pairs.push((k, v.trim_matches(['"', '\'']).to_string()));
                }
            }
        }
        // `--token VALUE`, `--api-key VALUE`.
        if let (Some(opt), Some(next)) = (arg.strip_prefix("--"), argv.get(i + 1)) {
            if !opt.contains('=') && !next.starts_with('-') {
                pairs.push((opt.replace('-', "_"), next.clone()));
            }
        }
    }
    // An option name like `token` or `api_key` is secret-looking as `X_TOKEN` would be.
    let named: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (format!("ARG_{k}"), v))
        .collect();
    from_env(&named)
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Secrets in a credential file's content, by its path.
pub fn from_file(path: &str, content: &[u8]) -> Vec<Harvested> {
    let text = String::from_utf8_lossy(content);
    let name = basename(path);
    let src = format!("file:{path}");
    let mut out: Vec<Harvested> = Vec::new();
    let mut push = |v: &str, provider: &str, kind: &str, iss: &[&str], rev: &str| {
        let v = v.trim().trim_matches('"').trim_matches('\'');
        if plausible(v) {
            out.push((
                Zeroizing::new(v.as_bytes().to_vec()),
                meta(src.clone(), provider, kind, iss, rev),
            ));
        }
    };
    let kv = |line: &str, keys: &[&str]| -> Option<String> {
        let (k, v) = line.split_once('=').or_else(|| line.split_once(':'))?;
        let k = k
            .trim()
            .trim_start_matches("//")
            .rsplit(':')
            .next()
            .unwrap_or("")
            .trim();
        keys.iter()
            .any(|x| k.eq_ignore_ascii_case(x))
            .then(|| v.trim().to_string())
    };
    if path.starts_with("/run/secrets/") {
        push(&text, "workspace", "mounted_secret", &[], "webhook");
        return out;
    }
    if name.ends_with(".json") {
        return from_json_credentials(&src, &text);
    }
    match name {
        ".git-credentials" => {
            for line in text.lines() {
                // https://user:password@host
                if let Some(rest) = line.split("://").nth(1) {
                    if let Some((cred, host)) = rest.rsplit_once('@') {
                        let pass = cred.split_once(':').map(|(_, p)| p).unwrap_or(cred);
                        let pass = crate::detect::engine::percent_decode(pass.as_bytes());
                        let host = host.split('/').next().unwrap_or(host);
                        push(
                            &String::from_utf8_lossy(&pass),
                            "git",
                            "credential",
                            &[host],
                            "webhook",
                        );
                    }
                }
            }
        }
        "hosts.yml" => {
            for line in text.lines() {
                if let Some(v) = kv(line, &["oauth_token", "token"]) {
                    push(
                        &v,
                        "github",
                        "oauth_token",
                        &["github.com", "api.github.com"],
                        "github_credentials_revoke",
                    );
                }
            }
        }
        ".npmrc" => {
            for line in text.lines() {
                if let Some(v) = kv(line, &["_authToken", "_auth", "_password"]) {
                    push(&v, "npm", "auth_token", &["registry.npmjs.org"], "webhook");
                }
            }
        }
        ".pypirc" => {
            for line in text.lines() {
                if let Some(v) = kv(line, &["password"]) {
                    push(
                        &v,
                        "pypi",
                        "api_token",
                        &["upload.pypi.org", "pypi.org"],
                        "webhook",
                    );
                }
            }
        }
        ".netrc" | "_netrc" => {
            let toks: Vec<&str> = text.split_whitespace().collect();
            let mut host = String::new();
            for w in toks.windows(2) {
                if w[0] == "machine" {
                    host = w[1].to_string();
                }
                if w[0] == "password" {
                    push(w[1], "netrc", "password", &[host.as_str()], "webhook");
                }
            }
        }
        "credentials" => {
            for line in text.lines() {
                if let Some(v) = kv(line, &["aws_secret_access_key", "aws_session_token"]) {
                    push(
                        &v,
                        "aws",
                        "secret_access_key",
                        &["*.amazonaws.com"],
                        "webhook",
                    );
                }
                // RubyGems (~/.gem/credentials): `:rubygems_api_key: rubygems_…`.
                if let Some(v) = kv(line.trim_start_matches(':'), &["rubygems_api_key"]) {
                    push(&v, "rubygems", "api_key", &["rubygems.org"], "webhook");
                }
            }
        }
        "config" => {
            for line in text.lines() {
                if let Some(v) = kv(line, &["token", "client-key-data", "password"]) {
                    push(&v, "kubernetes", "credential", &[], "webhook");
                }
            }
        }
        ".env" => {
            for line in text.lines() {
                let line = line.trim().trim_start_matches("export ");
                if let Some((k, v)) = line.split_once('=') {
                    let v = v.trim().trim_matches('"').trim_matches('\'');
                    if let Some((pass, provider, host)) = uri_password(v) {
                        push(
                            &String::from_utf8_lossy(&pass),
                            provider,
                            "connection_password",
                            &[host.as_str()],
                            "webhook",
                        );
                    } else if is_secret_env(k.trim()) {
                        push(v, "workspace", "env_file_secret", &[], "webhook");
                    }
                }
            }
        }
        // PostgreSQL password file: host:port:database:user:password.
        ".pgpass" => {
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let f: Vec<&str> = line.splitn(5, ':').collect();
                if f.len() == 5 {
                    push(f[4], "postgres", "password", &[f[0]], "webhook");
                }
            }
        }
        // MySQL option file: password= in any group.
        ".my.cnf" | ".mylogin.cnf" => {
            for line in text.lines() {
                if let Some(v) = kv(line, &["password"]) {
                    push(&v, "mysql", "password", &[], "webhook");
                }
            }
        }
        // Cargo registry token (crates.io), Vault's token helper file.
        "credentials.toml" => {
            for line in text.lines() {
                if let Some(v) = kv(line, &["token"]) {
                    push(&v, "crates_io", "api_token", &["crates.io"], "webhook");
                }
            }
        }
        ".vault-token" => push(&text, "vault", "token", &[], "vault_revoke_self"),
        // Maven: <server><password>…</password></server>.
        "settings.xml" => {
            for part in text.split("<password>").skip(1) {
                if let Some((v, _)) = part.split_once("</password>") {
                    push(v, "maven", "repository_password", &[], "webhook");
                }
            }
        }
        // Coder CLI session file, agent token file, and generic token files: the content.
        "session" | "agent-token" | "token" => {
            push(&text, "coder", "token", &[], "coder_key_delete")
        }
        _ => {}
    }
    out
}

/// Secrets in a JSON credential file: a Google service-account key (`private_key`) or
/// application-default user credentials (`client_secret`, `refresh_token`), an Azure
/// service principal (`password` next to `appId`), Terraform's `credentials.tfrc.json`
/// (`token` per host), docker's `config.json` (`auths`). The private key is learned as
/// the PEM text it stands for (a leak of the JSON carries it escaped, which the learned
/// matcher covers).
fn from_json_credentials(src: &str, text: &str) -> Vec<Harvested> {
    let mut out: Vec<Harvested> = Vec::new();
    let Ok(j) = serde_json::from_str::<serde_json::Value>(text) else {
        return out;
    };
    let mut push = |v: &str, provider: &str, kind: &str, iss: &[&str], rev: &str| {
        if plausible(v) {
            out.push((
                Zeroizing::new(v.trim().as_bytes().to_vec()),
                meta(src.to_string(), provider, kind, iss, rev),
            ));
        }
    };
    let s = |k: &str| j.get(k).and_then(|v| v.as_str());
    const GOOGLE: &[&str] = &["oauth2.googleapis.com", "*.googleapis.com"];
    match s("type") {
        Some("service_account") => {
            if let Some(k) = s("private_key") {
                push(k, "google", "service_account_key", GOOGLE, "webhook");
            }
        }
        Some("authorized_user") => {
            for k in ["client_secret", "refresh_token"] {
                if let Some(v) = s(k) {
                    push(v, "google", k, GOOGLE, "webhook");
                }
            }
        }
        _ => {}
    }
    if s("appId").is_some() {
        if let Some(p) = s("password") {
            push(
                p,
                "azure",
                "client_secret",
                &["login.microsoftonline.com"],
                "webhook",
            );
        }
    }
    if let Some(creds) = j.get("credentials").and_then(|c| c.as_object()) {
        for (host, c) in creds {
            if let Some(t) = c.get("token").and_then(|t| t.as_str()) {
                push(t, "hashicorp", "api_token", &[host.as_str()], "webhook");
            }
        }
    }
    if let Some(auths) = j.get("auths").and_then(|a| a.as_object()) {
        for (host, a) in auths {
            if let Some(auth) = a.get("auth").and_then(|x| x.as_str()) {
                if let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(auth) {
                    let dec = Zeroizing::new(dec);
                    if let Some((_, pass)) = String::from_utf8_lossy(&dec).split_once(':') {
                        push(
                            pass,
                            "docker",
                            "registry_credential",
                            &[host.as_str()],
                            "webhook",
                        );
                    }
                }
                push(auth, "docker", "registry_auth", &[host.as_str()], "webhook");
            }
            for k in ["identitytoken", "registrytoken", "password"] {
                if let Some(t) = a.get(k).and_then(|x| x.as_str()) {
                    push(t, "docker", k, &[host.as_str()], "webhook");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(h: &[Harvested]) -> Vec<String> {
        h.iter()
            .map(|(v, _)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    #[test]
    fn env_names() {
        for n in [
            "CODER_AGENT_TOKEN",
            "GITHUB_TOKEN",
            "MY_API_KEY",
            "DB_PASSWORD",
            "STRIPE_SECRET",
        ] {
            assert!(is_secret_env(n), "{n}");
        }
        for n in [
            "PATH",
            "HOME",
            "CODER_AGENT_TOKEN_FILE",
            "AWS_ACCESS_KEY_ID",
            "KEY_PATH",
        ] {
            assert!(!is_secret_env(n), "{n}");
        }
        let env = vec![
            (
                "CODER_AGENT_TOKEN".to_string(),
                "5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a".to_string(),
            ),
            ("GITHUB_TOKEN".to_string(), "true".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let h = from_env(&env);
        assert_eq!(values(&h), vec!["5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a"]);
        assert_eq!(h[0].1.source, "env:CODER_AGENT_TOKEN");
        let mut env2 = env.clone();
        env2.push((
            "CODER_AGENT_URL".into(),
            "https://coder.corp.example:8443/".into(),
        ));
        assert_eq!(from_env(&env2)[0].1.issuers, vec!["coder.corp.example"]);
        assert_eq!(url_host("http://u:p@[::1]:80/x").as_deref(), Some("::1"));
    }

    #[test]
    fn credential_files() {
        let h = from_file(
            "/home/u/.git-credentials",
            b"https://bot:s3cr3t%2Fvalue-99@git.example.test\n",
        );
        assert_eq!(values(&h), vec!["s3cr3t/value-99"]);
        assert_eq!(h[0].1.issuers, vec!["git.example.test"]);
        let h = from_file(
            "/home/u/.config/gh/hosts.yml",
            b"github.com:\n    user: me\n    oauth_token: gho_abcdefghijklmnopqrstu\n",
        );
        assert_eq!(values(&h), vec!["gho_abcdefghijklmnopqrstu"]);
        let auth = base64::engine::general_purpose::STANDARD.encode("me:registry-pass-123");
        let h = from_file(
            "/root/.docker/config.json",
            format!("{{\"auths\":{{\"ghcr.io\":{{\"auth\":\"{auth}\"}}}}}}").as_bytes(),
        );
        assert!(values(&h).contains(&"registry-pass-123".to_string()));
        let h = from_file(
            "/x/.npmrc",
            b"//registry.npmjs.org/:_authToken=npm-token-value-123\n",
        );
        assert_eq!(values(&h), vec!["npm-token-value-123"]);
        let h = from_file(
            "/x/.pypirc",
            b"[pypi]\nusername = __token__\npassword = pypi-token-value-xyz\n",
        );
        assert_eq!(values(&h), vec!["pypi-token-value-xyz"]);
        let h = from_file(
            "/x/.netrc",
            b"machine api.example.test login me password netrc-pass-456\n",
        );
        assert_eq!(values(&h), vec!["netrc-pass-456"]);
        let h = from_file("/x/.aws/credentials", b"[default]\naws_access_key_id = AKIAXXXX\naws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYzzzzzzzzzzzz\n");
        assert_eq!(values(&h), vec!["wJalrXUtnFEMIK7MDENGbPxRfiCYzzzzzzzzzzzz"]);
        let h = from_file(
            "/x/.kube/config",
            b"users:\n- name: x\n  user:\n    token: kube-token-abcdef123\n",
        );
        assert_eq!(values(&h), vec!["kube-token-abcdef123"]);
        let h = from_file("/run/secrets/db", b"mounted-secret-value\n");
        assert_eq!(values(&h), vec!["mounted-secret-value"]);
        assert!(from_file("/x/unrelated.txt", b"password=abcdefgh1").is_empty());
    }

    #[test]
    fn structured_credentials_yield_their_secret_part() {
        // Connection URIs: the password, whatever the variable is called.
        let env = vec![
            (
                "DATABASE_URL".to_string(),
                "postgres://app:Zx9%2FQw8Er7Ty@db.internal.example:5432/app".to_string(),
            ),
            (
                "CACHE".to_string(),
                "redis://:s3cr3t-R3dis-pw@cache:6379/0".to_string(),
            ),
            (
                "HOMEPAGE".to_string(),
                "https://example.test/docs".to_string(),
            ),
        ];
        let h = from_env(&env);
        assert_eq!(values(&h), vec!["Zx9/Qw8Er7Ty", "s3cr3t-R3dis-pw"]);
        assert_eq!(h[0].1.provider, "postgres");
        assert_eq!(h[0].1.issuers, vec!["db.internal.example"]);
        assert_eq!(h[1].1.provider, "redis");
        let h = from_file(
            "/w/.env",
            b"export MONGO_URI=\"mongodb+srv://svc:Mo7ngoPass99@cluster0.example.mongodb.net/db\"\n",
        );
        assert_eq!(values(&h), vec!["Mo7ngoPass99"]);
        assert_eq!(h[0].1.provider, "mongodb");
        // Google service-account key file: the private key (as PEM), not the whole file.
        let sa = r#"{"type": "service_account", "project_id": "p", "private_key_id": "abc",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
            "client_email": "ci@p.iam.gserviceaccount.com"}"#;
        let h = from_file("/home/u/.config/gcloud/sa-key.json", sa.as_bytes());
        assert_eq!(h.len(), 1);
        let v = String::from_utf8_lossy(&h[0].0).into_owned();
        assert!(v.starts_with("-----BEGIN PRIVATE KEY-----\nMIIE"), "{v}");
        assert_eq!(h[0].1.kind, "service_account_key");
        let adc = br#"{"type": "authorized_user", "client_id": "x.apps.googleusercontent.com",
            "client_secret": "GOCSPX-abcdefghijklmnop", "refresh_token": "1//0abcdefghijklmnopqrstuv"}"#;
        assert_eq!(
            values(&from_file("/r/application_default_credentials.json", adc)),
            vec!["GOCSPX-abcdefghijklmnop", "1//0abcdefghijklmnopqrstuv"]
        );
        let sp = br#"{"appId": "0b1c2d3e-0000-4000-8000-000000000001", "password": "Dip8Q~D6gVs6qJNLYTzp8~zqrle", "tenant": "t"}"#;
        assert_eq!(
            values(&from_file("/r/sp.json", sp)),
            vec!["Dip8Q~D6gVs6qJNLYTzp8~zqrle"]
        );
        let tf =
            br#"{"credentials": {"app.terraform.io": {"token": "AbCdEf.atlasv1.GhIjKlMnOp"}}}"#;
        let h = from_file("/r/.terraform.d/credentials.tfrc.json", tf);
        assert_eq!(values(&h), vec!["AbCdEf.atlasv1.GhIjKlMnOp"]);
        assert_eq!(h[0].1.issuers, vec!["app.terraform.io"]);
        // Password and token files.
        assert_eq!(
            values(&from_file(
                "/r/.pgpass",
                b"# c\ndb.example:5432:app:svc:pg-Pass-w0rd\n"
            )),
            vec!["pg-Pass-w0rd"]
        );
        assert_eq!(
            values(&from_file(
                "/r/.my.cnf",
                b"[client]\nuser=x\npassword=My5qlPassw0rd\n"
            )),
            vec!["My5qlPassw0rd"]
        );
        assert_eq!(
            values(&from_file(
                "/r/.cargo/credentials.toml",
                b"[registry]\ntoken = \"cioAbCdEfGhIjKlMn\"\n"
            )),
            vec!["cioAbCdEfGhIjKlMn"]
        );
        assert_eq!(
            values(&from_file(
                "/r/.gem/credentials",
                b"---\n:rubygems_api_key: rubygems_0123456789abcdef\n"
            )),
            vec!["rubygems_0123456789abcdef"]
        );
        assert_eq!(
            values(&from_file(
                "/r/.m2/settings.xml",
                b"<servers><server><id>c</id><password>Mvn-Passw0rd-1</password></server></servers>"
            )),
            vec!["Mvn-Passw0rd-1"]
        );
    }
}
