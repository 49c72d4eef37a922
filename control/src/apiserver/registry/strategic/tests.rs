//! Strategic merge patch cases after upstream's strategicpatch tests (the same scenarios on a
//! test type shaped like upstream's `MergeItem`), then the same directives on real kinds, whose
//! metadata comes from the upstream markers.

use serde_json::{Value, json};

use super::{KindSchema, PatchMeta, PatchSchema, StrategicError, apply};

/// Upstream's test type `MergeItem` (and `RetainKeysMergeItem`), as a schema.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Merge,
    RetainKeys,
    Other,
}

fn meta(strategy: &'static str, merge_key: &'static str) -> PatchMeta {
    PatchMeta {
        strategy,
        merge_key,
    }
}

impl PatchSchema for Item {
    fn field(&self, key: &str) -> (Self, PatchMeta) {
        match (self, key) {
            (Item::Merge | Item::RetainKeys, "mergingList") => (Item::Merge, meta("merge", "name")),
            (Item::Merge | Item::RetainKeys, "nonMergingList") => (Item::Merge, meta("", "")),
            (Item::Merge | Item::RetainKeys, "mergingIntList") => (Item::Other, meta("merge", "")),
            (Item::Merge, "mergeItemPtr") => (Item::Merge, meta("merge", "name")),
            (Item::Merge, "replacingItem") => (Item::Other, meta("replace", "")),
            (Item::Merge, "retainKeysMap") => (Item::RetainKeys, meta("retainKeys", "")),
            (Item::Merge, "retainKeysMergingList") => {
                (Item::Merge, meta("merge,retainKeys", "name"))
            }
            _ => (Item::Other, PatchMeta::default()),
        }
    }

    fn name(&self) -> String {
        format!("{self:?}")
    }
}

fn patched<S: PatchSchema>(
    schema: &S,
    original: Value,
    patch: Value,
) -> Result<Value, StrategicError> {
    let mut out = original;
    apply(&mut out, patch.as_object().expect("a patch object"), schema)?;
    Ok(out)
}

#[track_caller]
fn case(original: Value, patch: Value, want: Value) {
    assert_eq!(patched(&Item::Merge, original, patch).unwrap(), want);
}

#[track_caller]
fn fails(original: Value, patch: Value, want: &str) {
    let e = patched(&Item::Merge, original, patch).unwrap_err();
    assert!(e.to_string().contains(want), "{e}");
}

#[test]
fn maps_merge_and_nulls_delete() {
    case(
        json!({"name": "a", "value": "1", "simpleMap": {"k": "v"}}),
        json!({"value": null, "other": "x", "simpleMap": {"k2": "v2"}}),
        json!({"name": "a", "other": "x", "simpleMap": {"k": "v", "k2": "v2"}}),
    );
    // A null for a key the object lacks is dropped, also inside a value added whole.
    case(
        json!({"name": "a"}),
        json!({"value": null, "simpleMap": {"a": null, "b": "1"}}),
        json!({"name": "a", "simpleMap": {"b": "1"}}),
    );
}

#[test]
fn map_directives() {
    case(
        json!({"simpleMap": {"key1": "1", "key2": "1"}}),
        json!({"simpleMap": {"$patch": "delete"}}),
        json!({"simpleMap": {}}),
    );
    case(
        json!({"name": "1", "value": "1"}),
        json!({"$patch": "replace"}),
        json!({}),
    );
    case(
        json!({"name": "1", "value": "1"}),
        json!({"other": "a", "$patch": "replace"}),
        json!({"other": "a"}),
    );
    fails(
        json!({"simpleMap": {"a": "1"}}),
        json!({"simpleMap": {"$patch": "merge"}}),
        "unknown patch type: merge in map",
    );
}

#[test]
fn merging_lists_merge_by_key_and_keep_the_patch_order() {
    case(
        json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}),
        json!({"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}, {"name": "2", "other": "x"}]}),
        json!({"mergingList": [
            {"name": "3", "value": "c"},
            {"name": "1", "value": "a"},
            {"name": "2", "value": "b", "other": "x"},
        ]}),
    );
    // Server-only items keep their place relative to the patched ones.
    case(
        json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]}),
        json!({"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}]}),
        json!({"mergingList": [
            {"name": "2", "value": "b"},
            {"name": "3", "value": "c"},
            {"name": "1", "value": "a"},
        ]}),
    );
    // A non-merging list nested in a merging one is replaced.
    case(
        json!({"mergingList": [
            {"name": "1", "other": "a", "nonMergingList": [{"name": "1"}, {"name": "2", "value": "2"}]},
            {"name": "2", "other": "b"},
        ]}),
        json!({
            "$setElementOrder/mergingList": [{"name": "1"}, {"name": "2"}],
            "mergingList": [{"name": "1", "nonMergingList": [{"name": "1", "value": "1"}]}],
        }),
        json!({"mergingList": [
            {"name": "1", "other": "a", "nonMergingList": [{"name": "1", "value": "1"}]},
            {"name": "2", "other": "b"},
        ]}),
    );
    // Non-merging lists are replaced.
    case(
        json!({"nonMergingList": [{"name": "1"}, {"name": "2"}], "nonMergingIntList": [1, 2]}),
        json!({"nonMergingList": [{"name": "3"}], "nonMergingIntList": [3]}),
        json!({"nonMergingList": [{"name": "3"}], "nonMergingIntList": [3]}),
    );
    fails(
        json!({"mergingList": [{"name": "1", "value": "a"}]}),
        json!({"mergingList": [{"value": "b"}]}),
        "map: map[value:b] does not contain declared merge key: name",
    );
}

#[test]
fn list_item_directives() {
    case(
        json!({"mergingList": [{"name": "1"}, {"name": "2"}]}),
        json!({"mergingList": [{"$patch": "replace"}]}),
        json!({"mergingList": []}),
    );
    case(
        json!({"mergingList": [{"name": "1"}, {"name": "2"}]}),
        json!({"mergingList": [{"name": "3", "value": "3"}, {"$patch": "replace"}]}),
        json!({"mergingList": [{"name": "3", "value": "3"}]}),
    );
    // Every item with the key goes, duplicates included; a missing one is no error.
    case(
        json!({"mergingList": [
            {"name": "1"}, {"name": "1"}, {"name": "2", "value": "a"}, {"name": "3"}, {"name": "3"},
        ]}),
        json!({"mergingList": [
            {"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}, {"name": "9", "$patch": "delete"},
        ]}),
        json!({"mergingList": [{"name": "2", "value": "a"}]}),
    );
    fails(
        json!({"mergingList": [{"name": "1"}]}),
        json!({"mergingList": [{"name": "1", "$patch": "merge"}]}),
        "merging lists cannot yet be specified in the patch",
    );
    // A directive item in a list the object lacks is dropped.
    case(
        json!({}),
        json!({"mergingList": [{"name": "1"}, {"name": "2", "$patch": "delete"}]}),
        json!({"mergingList": [{"name": "1"}]}),
    );
}

#[test]
fn primitive_lists_union_and_delete() {
    case(
        json!({"mergingIntList": [1, 2]}),
        json!({"mergingIntList": [2, 3]}),
        json!({"mergingIntList": [1, 2, 3]}),
    );
    case(
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"mergingIntList": [3, 1]}),
        json!({"mergingIntList": [2, 3, 1]}),
    );
    case(
        json!({"mergingIntList": [1, 2, 3, 3, 4]}),
        json!({"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]}),
        json!({"mergingIntList": [1, 2, 4]}),
    );
    case(
        json!({"mergingIntList": [1, 2]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
        json!({"mergingIntList": [1, 2]}),
    );
    // Deleting from an absent list does not create it; a list without the merge strategy
    // is pruned just the same.
    case(
        json!({"foo": ["bar"]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
        json!({"foo": ["bar"]}),
    );
    case(
        json!({"nonMergingIntList": [1, 2, 3]}),
        json!({"$deleteFromPrimitiveList/nonMergingIntList": [2]}),
        json!({"nonMergingIntList": [1, 3]}),
    );
    fails(
        json!({"mergingIntList": [1]}),
        json!({"$deleteFromPrimitiveListmergingIntList": [1]}),
        "invalid patch format of primitive list",
    );
    fails(
        json!({"mergingIntList": [1]}),
        json!({"mergingIntList": ["2"]}),
        "list element types are not identical",
    );
    fails(
        json!({"mergingIntList": [[1]]}),
        json!({"mergingIntList": [[2]]}),
        "lists of lists are not supported",
    );
}

#[test]
fn set_element_order() {
    // New item first, as ordered; a server-only item stays after its live predecessor.
    case(
        json!({"mergingIntList": [1, 4, 2]}),
        json!({"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]}),
        json!({"mergingIntList": [3, 1, 4, 2]}),
    );
    case(
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"$setElementOrder/mergingIntList": [2, 1], "$deleteFromPrimitiveList/mergingIntList": [3]}),
        json!({"mergingIntList": [2, 1]}),
    );
    case(
        json!({"mergingList": [{"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}]}),
        json!({
            "$setElementOrder/mergingList": [{"name": "3"}, {"name": "1"}, {"name": "2"}],
            "mergingList": [{"name": "3", "value": "3"}],
        }),
        json!({"mergingList": [
            {"name": "3", "value": "3"},
            {"name": "1", "other": "a"},
            {"name": "2", "value": "2", "other": "b"},
        ]}),
    );
    case(
        json!({"mergingList": [
            {"name": "1", "other": "a"}, {"name": "3", "value": "3"}, {"name": "4", "value": "4"},
            {"name": "2", "value": "2"}, {"name": "9"},
        ]}),
        json!({"$setElementOrder/mergingList": [{"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}]}),
        json!({"mergingList": [
            {"name": "4", "value": "4"}, {"name": "2", "value": "2"}, {"name": "3", "value": "3"},
            {"name": "1", "other": "a"}, {"name": "9"},
        ]}),
    );
    // Items the order names but nobody has are ignored.
    case(
        json!({"mergingList": [{"name": "1"}, {"name": "3"}]}),
        json!({
            "$setElementOrder/mergingList": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}],
        }),
        json!({"mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]}),
    );
    // Delete in one list, reorder another.
    case(
        json!({
            "mergingList": [{"name": "a", "value": "a"}, {"name": "b", "value": "b"}],
            "mergeItemPtr": [{"name": "c", "value": "c"}, {"name": "d", "value": "d"}],
        }),
        json!({
            "$setElementOrder/mergingList": [{"name": "b"}],
            "$setElementOrder/mergeItemPtr": [{"name": "d"}, {"name": "c"}],
            "mergingList": [{"$patch": "delete", "name": "a"}],
        }),
        json!({
            "mergingList": [{"name": "b", "value": "b"}],
            "mergeItemPtr": [{"name": "d", "value": "d"}, {"name": "c", "value": "c"}],
        }),
    );
    fails(
        json!({"mergingList": [{"name": "1"}, {"name": "3"}, {"name": "2"}]}),
        json!({
            "$setElementOrder/mergingList": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
            "mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}],
        }),
        "doesn't match $setElementOrder list",
    );
    fails(
        json!({"mergingIntList": [1, 3, 2]}),
        json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
        "doesn't match",
    );
}

#[test]
fn retain_keys() {
    // Without the directive a retainKeys map merges like any map.
    case(
        json!({"retainKeysMap": {"name": "foo"}}),
        json!({"retainKeysMap": {"value": "bar"}}),
        json!({"retainKeysMap": {"name": "foo", "value": "bar"}}),
    );
    // With it, keys not retained are cleared (a discriminated union switching members).
    case(
        json!({"retainKeysMap": {"name": "type1", "value": "foo"}}),
        json!({"retainKeysMap": {"$retainKeys": ["name", "other"], "name": "type2", "other": "bar"}}),
        json!({"retainKeysMap": {"name": "type2", "other": "bar"}}),
    );
    case(
        json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a", "other": "x"}]}),
        json!({
            "$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}],
            "retainKeysMergingList": [{"$retainKeys": ["name", "value"], "name": "foo"}],
        }),
        json!({"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
    );
    // Every key the patch sets must be retained.
    fails(
        json!({"retainKeysMap": {"name": "a"}}),
        json!({"retainKeysMap": {"$retainKeys": ["name"], "value": "b"}}),
        "invalid patch format of retainKeys",
    );
}

#[test]
fn replace_strategy_replaces_the_whole_map() {
    case(
        json!({"name": "o", "replacingItem": {"Some": "Generic", "Yaml": "Inside"}}),
        json!({"replacingItem": {"Newly": "Modified", "Yaml": "Inside"}}),
        json!({"name": "o", "replacingItem": {"Newly": "Modified", "Yaml": "Inside"}}),
    );
}

// The same directives on real kinds, whose metadata is the upstream markers'.

fn kind(api_version: &str, kind: &str) -> KindSchema {
    KindSchema::for_kind(api_version, kind).expect("an upstream kind")
}

#[test]
fn pod_lists_follow_the_upstream_markers() {
    let pod = json!({
        "metadata": {"name": "p", "finalizers": ["a", "b"], "labels": {"x": "1"}},
        "spec": {
            "containers": [
                {"name": "a", "image": "i", "args": ["1", "2"], "env": [{"name": "E1", "value": "1"}],
                 "ports": [{"containerPort": 80}], "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
                {"name": "b", "image": "i"},
            ],
            "tolerations": [{"key": "k1"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
    });
    let patch = json!({
        "metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"x": null}},
        "spec": {
            "containers": [{"name": "a", "args": ["3"], "env": [{"name": "E2", "value": "2"}],
                            "ports": [{"containerPort": 81}],
                            "volumeMounts": [{"mountPath": "/v", "$patch": "delete"}]}],
            "tolerations": [{"key": "k2"}],
            // A volume switching its source: the old member is cleared.
            "volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/h"}}],
        },
    });
    let out = patched(&kind("v1", "Pod"), pod, patch).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "b"]));
    assert_eq!(out["metadata"]["labels"], json!({}));
    let a = &out["spec"]["containers"][0];
    assert_eq!(a["args"], json!(["3"]), "args has no strategy: replaced");
    assert_eq!(
        a["env"],
        json!([{"name": "E2", "value": "2"}, {"name": "E1", "value": "1"}])
    );
    assert_eq!(
        a["ports"],
        json!([{"containerPort": 81}, {"containerPort": 80}])
    );
    assert_eq!(a["volumeMounts"], json!([]));
    assert_eq!(
        out["spec"]["containers"][1],
        json!({"name": "b", "image": "i"})
    );
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "k2"}]));
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "v", "hostPath": {"path": "/h"}}])
    );
}

#[test]
fn workload_templates_and_strategies() {
    let deploy = json!({"spec": {
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
        "template": {"metadata": {"annotations": {"a": "1"}},
                     "spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d", "image": "1"}]}},
    }});
    let patch = json!({"spec": {
        "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
        "template": {"metadata": {"annotations": {"restartedAt": "now"}},
                     "spec": {"containers": [{"name": "d", "image": "2"}]}},
    }});
    let out = patched(&kind("apps/v1", "Deployment"), deploy, patch).unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        out["spec"]["template"]["metadata"]["annotations"],
        json!({"a": "1", "restartedAt": "now"})
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c", "image": "1"}, {"name": "d", "image": "2"}])
    );
    // `replace` strategy: a PodDisruptionBudget's selector is replaced, not merged.
    let pdb = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}});
    let out = patched(
        &kind("policy/v1", "PodDisruptionBudget"),
        pdb,
        json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"b": "2"}}));
    // Service ports merge on `port`.
    let svc =
        json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
    let out = patched(
        &kind("v1", "Service"),
        svc,
        json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "name": "http"}, {"port": 443, "name": "https", "targetPort": 8443}])
    );
}

#[test]
fn leftover_directives_are_not_stored() {
    let out = patched(
        &kind("v1", "Pod"),
        json!({"spec": {}}),
        json!({"spec": {"containers": [{"name": "a", "$setElementOrder/env": [{"name": "X"}],
                                         "env": [{"name": "X"}]}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a", "env": [{"name": "X"}]}])
    );
}

#[test]
fn unknown_fields_have_no_metadata() {
    // Not in the type: a list is replaced, a map merged.
    let out = patched(
        &kind("v1", "ConfigMap"),
        json!({"x": [1, 2], "y": {"a": 1}}),
        json!({"x": [3], "y": {"b": 2}}),
    )
    .unwrap();
    assert_eq!(out, json!({"x": [3], "y": {"a": 1, "b": 2}}));
    assert!(KindSchema::for_kind("example.com/v1", "Widget").is_none());
}

#[test]
fn list_map_without_patch_strategy_is_replaced() {
    // `resources.claims` is `listType=map` (k8s-openapi's DeepMerge merges it by name) but has
    // no patch strategy upstream, so a strategic merge patch replaces it.
    let out = patched(
        &kind("v1", "Pod"),
        json!({"spec": {"containers": [{"name": "a", "resources": {"claims": [{"name": "x"}]}}]}}),
        json!({"spec": {"containers": [{"name": "a", "resources": {"claims": [{"name": "y"}]}}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"][0]["resources"]["claims"],
        json!([{"name": "y"}])
    );
}
