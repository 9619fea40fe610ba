//! Certificates for the mutual TLS tests, made with the `openssl` command line tool (no
//! certificate library is in the dependency tree): a self-signed server certificate,
//! certificate authorities, and client certificates one of them signs — valid, or with
//! validity dates that ended long ago.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pair {
    pub fn cert_str(&self) -> &str {
        self.cert.to_str().expect("utf-8 path")
    }
    pub fn key_str(&self) -> &str {
        self.key.to_str().expect("utf-8 path")
    }
}

/// Whether the `openssl` and `curl` tools these tests use are on PATH.
pub fn tools_available() -> bool {
    ["openssl", "curl"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            || Command::new(tool)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
    })
}

const EXTENSIONS: &str = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
    [ca_ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
    [server]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n\
    keyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n\
    [ca]\ndefault_ca = signer\n[signer]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
    default_md = sha256\npolicy = any\nunique_subject = no\nx509_extensions = client\n\
    [any]\ncommonName = supplied\norganizationName = optional\n\
    [client]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
    extendedKeyUsage = clientAuth\n";

/// A directory where certificates are made.
pub struct Pki {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        std::fs::write(dir.join("openssl.cnf"), EXTENSIONS).expect("openssl config");
        std::fs::write(dir.join("index.txt"), "").expect("ca database");
        std::fs::write(dir.join("serial"), "1000\n").expect("ca serial");
        Pki { dir: dir.to_path_buf() }
    }

    fn pair(&self, name: &str) -> Pair {
        Pair {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        }
    }

    /// A self-signed certificate named `name` with section `ext` of the config.
    fn self_signed(&self, name: &str, cn: &str, ext: &str) -> Pair {
        let p = self.pair(name);
        let subject = format!("/CN={cn}");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-config", "openssl.cnf"];
        args.extend(EC);
        args.extend(["-subj", &subject, "-extensions", ext]);
        args.extend(["-keyout", p.key_str(), "-out", p.cert_str()]);
        openssl(&self.dir, &args);
        p
    }

    /// A server certificate for 127.0.0.1 and localhost, self-signed, named `cn`.
    pub fn server(&self, name: &str, cn: &str) -> Pair {
        self.self_signed(name, cn, "server")
    }

    /// A certificate authority.
    pub fn ca(&self, name: &str) -> Pair {
        self.self_signed(name, &format!("{name} test CA"), "ca_ext")
    }

    /// A client certificate for `cn` that `ca` signs, valid from `start` to `end`
    /// (`YYYYMMDDHHMMSSZ`), or for two days from now when `dates` is `None`.
    pub fn client(&self, ca: &Pair, name: &str, cn: &str, dates: Option<(&str, &str)>) -> Pair {
        let p = self.pair(name);
        let csr = format!("{name}.csr");
        let subject = format!("/O=Lifeboat tests/CN={cn}");
        let mut args = vec!["req", "-new", "-nodes", "-config", "openssl.cnf", "-subj", &subject];
        args.extend(EC);
        args.extend(["-keyout", p.key_str(), "-out", &csr]);
        openssl(&self.dir, &args);
        let mut sign = vec!["ca", "-batch", "-notext", "-config", "openssl.cnf"];
        sign.extend([
            "-cert",
            ca.cert_str(),
            "-keyfile",
            ca.key_str(),
            "-in",
            &csr,
            "-out",
            p.cert_str(),
        ]);
        match dates {
            Some((start, end)) => sign.extend(["-startdate", start, "-enddate", end]),
            None => sign.extend(["-days", "2"]),
        }
        openssl(&self.dir, &sign);
        p
    }
}
