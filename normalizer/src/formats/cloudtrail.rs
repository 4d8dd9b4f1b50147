//! AWS CloudTrail. Definitions in `cloudtrail.toml`.

use schema::{Str, Value, f};

use super::util::{get, get_path};
use crate::steps::NamedStep;

/// event.type from an AWS API action name.
pub(crate) fn action_type(name: &str) -> &'static str {
    const CREATE: &[&str] = &[
        "Create",
        "Put",
        "Add",
        "Attach",
        "Run",
        "Start",
        "Import",
        "Register",
        "Upload",
        "Copy",
        "Restore",
        "Associate",
        "Post",
    ];
    const DELETE: &[&str] = &[
        "Delete",
        "Remove",
        "Detach",
        "Terminate",
        "Deregister",
        "Stop",
        "Disassociate",
        "Revoke",
        "Abort",
    ];
    const CHANGE: &[&str] = &[
        "Update", "Modify", "Set", "Change", "Enable", "Disable", "Reset", "Rotate", "Tag",
        "Untag", "Replace", "Complete",
    ];
    const ACCESS: &[&str] = &[
        "Get", "List", "Describe", "Head", "Lookup", "Search", "Invoke", "Converse", "Retrieve",
        "Select", "Download", "Batch", "Query", "Scan", "Assume", "Generate", "Decrypt",
    ];
    let starts = |set: &[&str]| set.iter().any(|p| name.starts_with(p));
    if starts(CREATE) {
        "creation"
    } else if starts(DELETE) {
        "deletion"
    } else if starts(CHANGE) {
        "change"
    } else if starts(ACCESS) {
        "access"
    } else {
        "info"
    }
}

pub static CLOUDTRAIL: NamedStep = NamedStep {
    name: "cloudtrail",
    doc: "CloudTrail: outcome from errorCode, event.type from the action, user name from the identity, ML component from the event source (s3, bedrock, sagemaker)",
    paths: &[
        "aws.cloudtrail.responseElements.ConsoleLogin",
        "aws.cloudtrail.requestParameters.modelId",
        "aws.cloudtrail.requestParameters.modelName",
        "aws.cloudtrail.requestParameters.endpointName",
        "aws.cloudtrail.requestParameters.modelPackageGroupName",
        "aws.cloudtrail.userIdentity.sessionContext.sessionIssuer.userName",
        "aws.cloudtrail.userIdentity.type",
    ],
    find: None,
    run: |ctx| {
        let ev = &mut ctx.event;
        // Failed console sign-ins carry no errorCode: the failure is in
        // responseElements.ConsoleLogin (and errorMessage).
        let failed = ev.get_id(f::ERROR_CODE).is_some()
            || get_path(ev, "aws.cloudtrail.responseElements.ConsoleLogin").as_deref()
                == Some("Failure");
        ev.set(f::EVENT_OUTCOME, if failed { "failure" } else { "success" });
        let action = get(ev, f::EVENT_ACTION).unwrap_or_default();
        let source = get(ev, f::EVENT_PROVIDER).unwrap_or_default();
        let service = source.strip_suffix(".amazonaws.com").unwrap_or(&source);
        // ECS lists the event types each category allows.
        // `event.type` is built as the array it is stored as (one vector).
        let (category, types): (&'static [&'static str], Vec<Value>) = match service {
            "iam" => {
                let base = match action_type(&action) {
                    "access" => "info",
                    other => other,
                };
                let mut t = Vec::with_capacity(2);
                t.push(Value::from(base));
                if action.contains("Group") {
                    t.push(Value::from("group"));
                } else if action.contains("User")
                    || action.contains("AccessKey")
                    || action.contains("LoginProfile")
                {
                    t.push(Value::from("user"));
                }
                (&["iam"], t)
            }
            "sts" | "signin" | "sso" => (
                &["authentication"],
                vec![Value::from(
                    if action == "ConsoleLogin" || action.starts_with("Assume") {
                        "start"
                    } else {
                        "info"
                    },
                )],
            ),
            _ => (&["api"], vec![Value::from(action_type(&action))]),
        };
        ev.set(f::EVENT_CATEGORY, schema::value::str_array(category));
        ev.set(f::EVENT_TYPE, Value::Array(types));
        let component = if service == "s3" {
            Some("s3")
        } else if service.starts_with("bedrock") {
            Some("bedrock")
        } else if service.starts_with("sagemaker") || service.starts_with("api.sagemaker") {
            Some("sagemaker")
        } else {
            None
        };
        if let Some(c) = component {
            ev.set(f::MLOPS_COMPONENT, c);
        }
        for path in [
            "aws.cloudtrail.requestParameters.modelId",
            "aws.cloudtrail.requestParameters.modelName",
            "aws.cloudtrail.requestParameters.endpointName",
            "aws.cloudtrail.requestParameters.modelPackageGroupName",
        ] {
            if let Some(m) = get_path(ev, path) {
                ev.set(f::MLOPS_MODEL_NAME, m);
                break;
            }
        }
        if ev.get_id(f::USER_NAME).is_none() {
            let name = get_path(
                ev,
                "aws.cloudtrail.userIdentity.sessionContext.sessionIssuer.userName",
            )
            .or_else(|| {
                (get_path(ev, "aws.cloudtrail.userIdentity.type").as_deref() == Some("Root"))
                    .then(|| Str::from_static("root"))
            })
            .or_else(|| {
                let arn = get(ev, f::USER_ID)?;
                let last = arn.rsplit(['/', ':']).next()?;
                (!last.is_empty()).then(|| arn.slice_ref(last))
            });
            if let Some(n) = name {
                ev.set(f::USER_NAME, n);
            }
        }
        // An AWS service calling on someone's behalf logs its name, not an IP.
        if ev.get_id(f::SOURCE_IP).is_none()
            && let Some(Value::Str(addr)) = ev.get_id(f::SOURCE_ADDRESS).cloned()
        {
            ev.set(f::SOURCE_DOMAIN, addr);
        }
        Ok(())
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, parse_all, text};

    #[test]
    fn data_event_line() {
        let line = r#"{"eventVersion":"1.10","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:sess","arn":"arn:aws:sts::123456789012:assumed-role/ci-deployer/sess","accountId":"123456789012","accessKeyId":"ASIAEXAMPLE","sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::123456789012:role/ci-deployer","userName":"ci-deployer"}}},"eventTime":"2026-11-30T10:31:00Z","eventSource":"s3.amazonaws.com","eventName":"PutObject","awsRegion":"us-east-1","sourceIPAddress":"s3.amazonaws.com","userAgent":"[aws-sdk-go]","requestParameters":{"bucketName":"ml-models","key":"fraud/v4/model.pkl"},"responseElements":null,"additionalEventData":{"bytesTransferredIn":5242880},"eventID":"e1","readOnly":false,"eventType":"AwsApiCall","recipientAccountId":"123456789012"}"#;
        let e = parse("aws.cloudtrail", line).unwrap();
        assert_eq!(text(&e, "user.name"), "ci-deployer");
        assert_eq!(text(&e, "event.type"), "creation");
        assert_eq!(text(&e, "mlops.component"), "s3");
        assert_eq!(text(&e, "aws.s3.object.key"), "fraud/v4/model.pkl");
        assert_eq!(text(&e, "http.request.body.bytes"), "5242880");
        assert_eq!(text(&e, "source.domain"), "s3.amazonaws.com");
        assert!(e.get("source.ip").is_none());
    }

    #[test]
    fn records_document() {
        let doc = r#"{"Records":[{"eventVersion":"1.10","userIdentity":{"type":"Root","arn":"arn:aws:iam::123456789012:root"},"eventTime":"2026-11-30T10:32:00Z","eventSource":"bedrock.amazonaws.com","eventName":"InvokeModel","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","requestParameters":{"modelId":"anthropic.claude-3-haiku-20240307-v1:0"},"eventID":"e2","recipientAccountId":"123456789012"},
{"eventVersion":"1.10","userIdentity":{"type":"IAMUser","userName":"bob"},"eventTime":"2026-11-30T10:33:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","errorCode":"AccessDenied","eventID":"e3"}]}"#;
        let events = parse_all("aws.cloudtrail", doc).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(text(&events[0], "user.name"), "root");
        assert_eq!(text(&events[0], "mlops.component"), "bedrock");
        assert_eq!(
            text(&events[0], "mlops.model.name"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(text(&events[0], "event.sequence"), "0");
        assert!(
            text(&events[0], "event.original")
                .starts_with(r#"{"eventVersion":"1.10","userIdentity":{"type":"Root""#)
        );
        assert_eq!(text(&events[1], "event.outcome"), "failure");
        assert_eq!(text(&events[1], "event.category"), "iam");
        assert!(
            parse_all("aws.cloudtrail", r#"{"Records":[{"eventVersion":"1.10"}]}"#).is_err(),
            "a record without eventName"
        );
    }

    #[test]
    fn action_types() {
        assert_eq!(super::action_type("DeleteBucketPolicy"), "deletion");
        assert_eq!(super::action_type("PutBucketVersioning"), "creation");
        assert_eq!(super::action_type("ListFoundationModels"), "access");
        assert_eq!(super::action_type("ConsoleLogin"), "info");
    }
}
