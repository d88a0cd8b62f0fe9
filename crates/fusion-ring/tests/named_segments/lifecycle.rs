//! Named segments from creation to removal: `O_EXCL` creation, opening
//! and removing missing names, invalid names, file modes, and who unlinks
//! the name when.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use fusion_ring::{remove_named, Config, PriorityClass, RingError, UltraFastRing};
use testkit::names::ShmName;

use crate::open_err;

#[test]
fn create_twice_is_already_exists_and_keeps_the_first() {
    let name = ShmName::new("fr-seg-twice");
    let first = UltraFastRing::create(name.name(), &Config::new(8)).unwrap();
    first.send_fast(b"first", PriorityClass::Normal).unwrap();
    for config in [Config::new(8), Config::new(16).mode(0o644)] {
        let err = UltraFastRing::create(name.name(), &config).unwrap_err();
        assert_eq!(err, RingError::AlreadyExists { name: name.label() });
        assert!(err.to_string().contains(name.name()), "{err}");
    }
    // Also with the leading slash.
    assert_eq!(
        UltraFastRing::create(&name.label(), &Config::new(8)).unwrap_err(),
        RingError::AlreadyExists { name: name.label() }
    );
    // The existing segment is untouched.
    assert_eq!(
        fs::metadata(name.path()).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let other = UltraFastRing::open(name.name()).unwrap();
    assert_eq!(other.as_ring().capacity(), 8);
    let mut buf = [0u8; 40];
    let (len, _, _) = other.recv_fast(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"first");
}

#[test]
fn open_and_remove_of_missing_name_is_not_found() {
    let name = ShmName::new("fr-seg-missing");
    let err = open_err(&name);
    assert_eq!(err, RingError::NotFound { name: name.label() });
    assert!(err.to_string().contains(name.name()), "{err}");
    assert_eq!(
        remove_named(name.name()),
        Err(RingError::NotFound { name: name.label() })
    );
    assert!(!name.exists());
}

#[test]
fn invalid_names_are_rejected_everywhere() {
    let long = "x".repeat(255);
    for bad in ["a/b", "", "/", "/a/b", "..", "a\0b", long.as_str()] {
        let is_invalid = |r: Result<(), RingError>| match r {
            Err(RingError::InvalidName { name, reason }) => {
                assert_eq!(name, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
        };
        is_invalid(UltraFastRing::create(bad, &Config::new(8)).map(drop));
        is_invalid(UltraFastRing::open(bad).map(drop));
        is_invalid(remove_named(bad));
    }
}

#[test]
fn named_segment_modes() {
    let default = ShmName::new("fr-seg-mode600");
    let ring = UltraFastRing::create(default.name(), &Config::new(8)).unwrap();
    let mode = fs::metadata(default.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "default mode is {mode:o}");
    drop(ring);

    let group = ShmName::new("fr-seg-mode640");
    let ring = UltraFastRing::create(group.name(), &Config::new(8).mode(0o640)).unwrap();
    let mode = fs::metadata(group.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "mode(0o640) gave {mode:o}");
    drop(ring);
}

#[test]
fn creator_drop_unlinks_by_default() {
    let name = ShmName::new("fr-seg-unlink");
    let ring = UltraFastRing::create(name.name(), &Config::new(8)).unwrap();
    assert!(name.exists());
    // An opener's drop does not unlink.
    drop(UltraFastRing::open(name.name()).unwrap());
    assert!(name.exists(), "dropping an opener removed the name");
    let opener = UltraFastRing::open(name.name()).unwrap();
    drop(ring);
    assert!(!name.exists(), "dropping the creator kept the name");
    assert_eq!(open_err(&name), RingError::NotFound { name: name.label() });
    // Handles already open keep working.
    opener
        .send_fast(b"still here", PriorityClass::Normal)
        .unwrap();
    let mut buf = [0u8; 40];
    let (len, _, _) = opener.recv_fast(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"still here");
}

#[test]
fn unlink_on_drop_false_keeps_the_name() {
    let name = ShmName::new("fr-seg-keep");
    let ring = UltraFastRing::create(name.name(), &Config::new(8).unlink_on_drop(false)).unwrap();
    ring.send_fast(b"persisted", PriorityClass::High).unwrap();
    drop(ring);
    assert!(name.exists(), "unlink_on_drop(false) removed the name");
    let again = UltraFastRing::open(name.name()).unwrap();
    let mut buf = [0u8; 40];
    let (len, prio, _) = again.recv_fast(&mut buf).unwrap();
    assert_eq!(
        (&buf[..len], prio),
        (&b"persisted"[..], PriorityClass::High)
    );
    drop(again);
    assert!(name.exists());
    remove_named(name.name()).unwrap();
    assert!(!name.exists());
    assert_eq!(
        remove_named(name.name()),
        Err(RingError::NotFound { name: name.label() })
    );
}
