//! Check files: a realistic file, the shipped ones, and errors with file and line.

use super::*;

/// A file using every field container-structure-test reads.
const FULL: &str = r#"schemaVersion: '2.0.0'
globalEnvVars:
  - key: PATH
    value: /opt/bin:/usr/bin
containerRunOptions:
  user: root
  privileged: false
  allocateTty: true
  envVars: [HOME]
  envFile: env.list
  capabilities: [NET_ADMIN]
  bindMounts: ["/tmp:/tmp"]
commandTests:
  - name: python version
    setup: [["touch", "/tmp/x"], ["true"]]
    teardown: [["rm", "/tmp/x"]]
    envVars:
      - key: LC_ALL
        value: C
    command: python3
    args: ["--version"]
    expectedOutput: ['Python 3\.\d+']
    excludedOutput: ["Python 2"]
    expectedError: []
    excludedError: ["(?i)warning"]
    exitCode: 0
  - name: fails
    command: "false"
    exitCode: 1
fileExistenceTests:
  - name: root
    path: /
    shouldExist: true
    permissions: drwxr-xr-x
    uid: 0
    gid: 0
    isExecutableBy: any
  - name: gone
    path: /etc/shadow-
    shouldExist: false
  - name: defaults
    path: /bin/sh
fileContentTests:
  - name: debian
    path: /etc/os-release
    expectedContents: ['ID=debian']
    excludedContents: ['ubuntu']
metadataTest:
  envVars:
    - key: LANG
      value: C.UTF-8
    - key: VERSION
      value: '^1\.'
      isRegex: true
  unboundEnvVars:
    - key: SECRET
  labels:
    - key: org.opencontainers.image.version
      value: '1.*'
      isRegex: true
  entrypoint: []
  cmd: ["/bin/sh"]
  exposedPorts: ["8080", "53/udp"]
  unexposedPorts: ["22"]
  volumes: ["/data"]
  unmountedVolumes: ["/tmp"]
  workdir: /app
  user: "1000"
licenseTests:
  - debian: true
    files: ["/usr/share/doc/x/copyright"]
"#;

fn parse(text: &str) -> Result<CheckFile, CheckError> {
    CheckFile::parse(text, Path::new("checks/x.yaml"))
}

/// (line, message) of an invalid file.
fn error(text: &str) -> (Option<usize>, String) {
    let e = parse(text).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("checks/x.yaml"),
        "the error names the file: {msg}"
    );
    (e.line(), msg)
}

#[test]
fn every_field_is_read() {
    let f = parse(FULL).unwrap();
    let t = &f.tests;
    assert_eq!(t.schema_version, "2.0.0");
    assert_eq!(t.global_env_vars[0].key, "PATH");
    let run = t.container_run_options.as_ref().unwrap();
    assert_eq!(run.user.as_deref(), Some("root"));
    assert!(run.allocate_tty && !run.privileged);
    assert_eq!(
        (
            run.env_vars.len(),
            run.capabilities.len(),
            run.bind_mounts.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(run.env_file.as_deref(), Some("env.list"));
    let c = &t.command_tests[0];
    assert_eq!(c.setup, [vec!["touch", "/tmp/x"], vec!["true"]]);
    assert_eq!(c.teardown.len(), 1);
    assert_eq!(
        (c.env_vars[0].key.as_str(), c.env_vars[0].value.as_str()),
        ("LC_ALL", "C")
    );
    assert_eq!(
        (c.command.as_str(), c.args.as_slice()),
        ("python3", &["--version".to_string()][..])
    );
    assert!(c.expected_output[0].is_match("Python 3.12.1"));
    assert!(!c.expected_output[0].is_match("Python 2.7"));
    assert!(c.excluded_error[0].is_match("WARNING: x"));
    assert_eq!(t.command_tests[1].exit_code, 1);
    let fe = &t.file_existence_tests;
    assert_eq!(fe[0].permissions.as_deref(), Some("drwxr-xr-x"));
    assert_eq!((fe[0].uid, fe[0].gid), (Some(0), Some(0)));
    assert_eq!(fe[0].is_executable_by, Some(ExecutableBy::Any));
    assert!(!fe[1].should_exist);
    assert!(fe[2].should_exist, "shouldExist defaults to true");
    assert_eq!((fe[2].uid, fe[2].permissions.as_ref()), (None, None));
    let fc = &t.file_content_tests[0];
    assert_eq!(fc.expected_contents[0].as_str(), "ID=debian");
    let m = t.metadata_test.as_ref().unwrap();
    assert!(m.env_vars[0].regex.is_none());
    assert!(m.env_vars[1].regex.as_ref().unwrap().is_match("1.2"));
    assert_eq!(m.unbound_env_vars[0].key, "SECRET");
    assert_eq!(m.unbound_env_vars[0].value, "");
    assert!(m.labels[0].regex.is_some());
    assert_eq!(m.entrypoint, Some(vec![]));
    assert_eq!(m.cmd, Some(vec!["/bin/sh".to_string()]));
    assert_eq!(m.exposed_ports, ["8080", "53/udp"]);
    assert_eq!(
        (
            m.unexposed_ports.len(),
            m.volumes.len(),
            m.unmounted_volumes.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (m.workdir.as_deref(), m.user.as_deref()),
        (Some("/app"), Some("1000"))
    );
    assert!(t.license_tests[0].debian);
    assert_eq!(
        f.counts(),
        Counts {
            command: 2,
            file_existence: 3,
            file_content: 1,
            metadata: 1,
            license: 1
        }
    );
    assert_eq!(f.counts().total(), 8);
}

#[test]
fn older_files_with_env_and_unquoted_values_parse() {
    let text = "schemaVersion: 2.0.0\nmetadataTest:\n  env:\n    - key: PORT\n      value: 8888\n  exposedPorts: [8888]\n";
    let f = parse(text).unwrap();
    let m = f.tests.metadata_test.unwrap();
    assert_eq!(
        (m.env_vars[0].key.as_str(), m.env_vars[0].value.as_str()),
        ("PORT", "8888")
    );
    assert_eq!(m.exposed_ports, ["8888"]);
    assert_eq!(
        parse("schemaVersion: \"2.0.0\"\n")
            .unwrap()
            .counts()
            .total(),
        0
    );
}

#[test]
fn unknown_fields_name_the_file_line_and_field() {
    let (line, msg) = error(&FULL.replace("    exitCode: 1", "    exitcode: 1"));
    assert_eq!(line, Some(29), "{msg}");
    assert!(
        msg.contains("commandTests[1]: unknown field `exitcode`"),
        "{msg}"
    );
    let (line, msg) = error(&format!("{FULL}fileTests: []\n"));
    assert_eq!(line, Some(72), "{msg}");
    assert!(msg.contains("unknown field `fileTests`"), "{msg}");
    let (line, msg) = error(&FULL.replace("  unmountedVolumes", "  unmountedVolume"));
    assert_eq!(line, Some(66), "{msg}");
    let (line, msg) =
        error(&FULL.replace("    - key: SECRET", "    - key: SECRET\n      regex: true"));
    assert_eq!(line, Some(57), "{msg}");
    assert!(msg.contains("unknown field `regex`"), "{msg}");
}

#[test]
fn bad_values_and_regexes_name_their_line() {
    let (line, msg) = error(&FULL.replace("['Python 3\\.\\d+']", "['Python 3\\.(\\d+']"));
    assert_eq!(line, Some(22), "{msg}");
    assert!(msg.contains("invalid regex"), "{msg}");
    let (line, msg) = error(&FULL.replace("['ubuntu']", "['ubuntu', '[z-a]']"));
    assert_eq!(line, Some(47), "{msg}");
    let (line, msg) = error(&FULL.replace("'^1\\.'", "'^1\\.('"));
    assert_eq!(line, Some(52), "{msg}");
    assert!(msg.contains("VERSION: invalid regex"), "{msg}");
    // Not a regex without isRegex.
    assert!(parse(&FULL.replace("value: C.UTF-8", "value: C.UTF-8(")).is_ok());
    let (line, msg) = error(&FULL.replace("isExecutableBy: any", "isExecutableBy: all"));
    assert_eq!(line, Some(37), "{msg}");
    let (line, msg) = error(&FULL.replace("exitCode: 0", "exitCode: zero"));
    assert_eq!(line, Some(26), "{msg}");
    let (line, msg) = error(&FULL.replace("  - name: fails\n", "  - name: [fails\n"));
    assert!(line.is_some(), "{msg}");
}

#[test]
fn the_schema_version_must_be_2_0_0() {
    let (line, msg) = error("\n\nschemaVersion: '1.0.0'\n");
    assert_eq!(line, Some(3), "{msg}");
    assert!(msg.contains("not supported"), "{msg}");
    let (line, msg) = error("commandTests: []\n");
    assert_eq!(line, None);
    assert!(msg.contains("no schemaVersion"), "{msg}");
}

#[test]
fn the_shipped_check_files_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/checks");
    let mut seen = Counts::default();
    for entry in std::fs::read_dir(dir).unwrap() {
        let f = CheckFile::load(&entry.unwrap().path()).unwrap();
        let c = f.counts();
        seen.command += c.command;
        seen.file_existence += c.file_existence;
        seen.file_content += c.file_content;
        seen.metadata += c.metadata;
        seen.license += c.license;
    }
    // Every kind is exercised by the example.
    assert!(seen.command > 0 && seen.file_existence > 0 && seen.file_content > 0);
    assert!(seen.metadata > 0 && seen.license > 0);
    let e = CheckFile::load(Path::new("/nonexistent/x.yaml")).unwrap_err();
    assert!(matches!(e, CheckError::Read { .. }), "{e}");
}
