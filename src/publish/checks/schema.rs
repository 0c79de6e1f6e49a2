//! The typed form of a container-structure-test file, schemaVersion 2.0.0: the field
//! names are the tool's own (camelCase), every field it reads is accepted, and any other
//! field is an error.

use super::pattern::{KeyValue, Pattern};
use serde::Deserialize;

/// The schema version this reader understands.
pub const SCHEMA_VERSION: &str = "2.0.0";

/// A whole check file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StructureTest {
    /// Must be `"2.0.0"`.
    pub schema_version: String,
    /// Variables set for every command test (before its own `envVars`).
    #[serde(default)]
    pub global_env_vars: Vec<KeyValue>,
    /// Commands run in a container of the image.
    #[serde(default)]
    pub command_tests: Vec<CommandTest>,
    /// Files that must (or must not) exist, with their mode and owner.
    #[serde(default)]
    pub file_existence_tests: Vec<FileExistenceTest>,
    /// Files whose contents must (or must not) match regexes.
    #[serde(default)]
    pub file_content_tests: Vec<FileContentTest>,
    /// The image's configuration (env, labels, entrypoint, ports, ...).
    #[serde(default)]
    pub metadata_test: Option<MetadataTest>,
    /// Debian copyright files and license files that must be present.
    #[serde(default)]
    pub license_tests: Vec<LicenseTest>,
    /// How check containers are run (user, capabilities, mounts, ...).
    #[serde(default)]
    pub container_run_options: Option<ContainerRunOptions>,
}

/// One `commandTests` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandTest {
    /// The test's name.
    pub name: String,
    /// Commands run before `command`, each an argv.
    #[serde(default)]
    pub setup: Vec<Vec<String>>,
    /// Commands run after `command`, each an argv.
    #[serde(default)]
    pub teardown: Vec<Vec<String>>,
    /// Variables set for the commands.
    #[serde(default)]
    pub env_vars: Vec<KeyValue>,
    /// The program run.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Regexes standard output must match.
    #[serde(default)]
    pub expected_output: Vec<Pattern>,
    /// Regexes standard output must not match.
    #[serde(default)]
    pub excluded_output: Vec<Pattern>,
    /// Regexes standard error must match.
    #[serde(default)]
    pub expected_error: Vec<Pattern>,
    /// Regexes standard error must not match.
    #[serde(default)]
    pub excluded_error: Vec<Pattern>,
    /// The expected exit code.
    #[serde(default)]
    pub exit_code: i32,
}

/// Who must be able to execute a file (`isExecutableBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutableBy {
    /// Anyone (some execute bit).
    Any,
    /// The owner.
    Owner,
    /// The group.
    Group,
    /// Others.
    Other,
}

fn yes() -> bool {
    true
}

/// One `fileExistenceTests` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileExistenceTest {
    /// The test's name.
    pub name: String,
    /// The path in the image.
    pub path: String,
    /// Whether it must exist (default true).
    #[serde(default = "yes")]
    pub should_exist: bool,
    /// The expected mode as `ls -l` shows it, e.g. `-rwxr-xr-x`.
    #[serde(default)]
    pub permissions: Option<String>,
    /// The expected owner id (absent or -1: not checked).
    #[serde(default)]
    pub uid: Option<i64>,
    /// The expected group id (absent or -1: not checked).
    #[serde(default)]
    pub gid: Option<i64>,
    /// Who must be able to execute it.
    #[serde(default)]
    pub is_executable_by: Option<ExecutableBy>,
}

/// One `fileContentTests` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileContentTest {
    /// The test's name.
    pub name: String,
    /// The path in the image.
    pub path: String,
    /// Regexes the contents must match.
    #[serde(default)]
    pub expected_contents: Vec<Pattern>,
    /// Regexes the contents must not match.
    #[serde(default)]
    pub excluded_contents: Vec<Pattern>,
}

/// The `metadataTest` section.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataTest {
    /// Variables the image's config must set (`envVars`; older files say `env`).
    #[serde(default, alias = "env")]
    pub env_vars: Vec<KeyValue>,
    /// Variables the image's config must not set (keys only).
    #[serde(default)]
    pub unbound_env_vars: Vec<KeyValue>,
    /// Labels the image must have.
    #[serde(default)]
    pub labels: Vec<KeyValue>,
    /// The exact entrypoint, when given (`[]`: none).
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// The exact cmd, when given (`[]`: none).
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Ports that must be exposed, e.g. `"8888"` or `"1080/tcp"`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// Ports that must not be exposed.
    #[serde(default)]
    pub unexposed_ports: Vec<String>,
    /// Volumes that must be declared.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Volumes that must not be declared.
    #[serde(default)]
    pub unmounted_volumes: Vec<String>,
    /// The working directory, when given.
    #[serde(default)]
    pub workdir: Option<String>,
    /// The user, when given.
    #[serde(default)]
    pub user: Option<String>,
}

/// One `licenseTests` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LicenseTest {
    /// Check the Debian copyright files of installed packages.
    #[serde(default)]
    pub debian: bool,
    /// License files that must exist.
    #[serde(default)]
    pub files: Vec<String>,
}

/// The `containerRunOptions` section.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerRunOptions {
    /// Run as this user.
    #[serde(default)]
    pub user: Option<String>,
    /// Run privileged.
    #[serde(default)]
    pub privileged: bool,
    /// Allocate a TTY.
    #[serde(default)]
    pub allocate_tty: bool,
    /// Names of variables passed from the environment.
    #[serde(default)]
    pub env_vars: Vec<String>,
    /// A file of variables.
    #[serde(default)]
    pub env_file: Option<String>,
    /// Capabilities added.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Bind mounts, `SRC:DST`.
    #[serde(default)]
    pub bind_mounts: Vec<String>,
}
