use super::*;

fn event(action: AuditAction, outcome: Outcome) -> AuditEvent {
    AuditEvent {
        client: "::ffff:10.10.1.2".parse().unwrap(),
        identity: Identity::user("carol"),
        method: "PUT".into(),
        action,
        repository: Some("team/app".into()),
        reference: Some("v1".into()),
        outcome,
        detail: None,
    }
}

#[test]
fn line_has_every_field_in_rfc3339_utc() {
    let now = time::macros::datetime!(2026-01-02 03:04:05.5 +02:00);
    let line = event(AuditAction::Push, Outcome::Ok).to_line(now);
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["time"], "2026-01-02T01:04:05.5Z");
    assert_eq!(v["client"], "10.10.1.2");
    assert_eq!(v["identity"], "carol");
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["action"], "push");
    assert_eq!(v["repository"], "team/app");
    assert_eq!(v["reference"], "v1");
    assert_eq!(v["outcome"], "ok");
    assert!(v.get("detail").is_none());
}

#[test]
fn anonymous_denial_with_detail_and_no_repository() {
    let mut e = event(AuditAction::Deny, Outcome::Denied);
    e.identity = Identity::Anonymous;
    e.repository = None;
    e.reference = None;
    e.detail = Some("push not allowed".into());
    let v: serde_json::Value =
        serde_json::from_str(&e.to_line(time::OffsetDateTime::UNIX_EPOCH)).unwrap();
    assert_eq!(v["identity"], "anonymous");
    assert_eq!(v["action"], "deny");
    assert_eq!(v["outcome"], "denied");
    assert!(v["repository"].is_null() && v["reference"].is_null());
    assert_eq!(v["detail"], "push not allowed");
    assert_eq!(v["time"], "1970-01-01T00:00:00Z");
}

#[test]
fn file_sink_keeps_every_line_whole_across_threads_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, "earlier\n").unwrap();
    let log = AuditLog::open(&AuditSink::File(path.clone())).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    let mut e = event(AuditAction::Tag, Outcome::Ok);
                    e.reference = Some(format!("t{t}-{i}"));
                    log.record(&e);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    log.flush();
    let after_flush = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after_flush.lines().count(), 1001);
    log.record(&event(AuditAction::Delete, Outcome::Failed));
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1002, "appended, nothing lost at drop");
    assert_eq!(lines[0], "earlier");
    for l in &lines[1..] {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["identity"], "carol");
    }
    assert!(lines[1001].contains("\"delete\""));
    use std::os::unix::fs::PermissionsExt;
    let fresh = dir.path().join("new.log");
    drop(AuditLog::open(&AuditSink::File(fresh.clone())).unwrap());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn off_records_nothing_and_bad_paths_fail() {
    let log = AuditLog::open(&AuditSink::Off).unwrap();
    log.record(&event(AuditAction::Login, Outcome::Ok));
    log.flush();
    assert_eq!(log.dropped(), 0);
    let e = AuditLog::open(&AuditSink::File("/nonexistent-dir/x/audit.log".into()));
    assert!(matches!(e, Err(AuditError::Open { .. })));
}
