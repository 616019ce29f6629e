# Written for Assay's examples, conftest style: `deny` and `warn` over a Terraform plan
# (`terraform show -json plan.out`).
package terraform.s3

import rego.v1

buckets contains r if {
	some r in input.resource_changes
	r.type == "aws_s3_bucket"
	not "delete" in r.change.actions
}

deny contains msg if {
	some r in buckets
	r.change.after.acl in {"public-read", "public-read-write"}
	msg := sprintf("%s: bucket ACL %s makes it public", [r.address, r.change.after.acl])
}

warn contains msg if {
	some r in buckets
	not r.change.after.tags.owner
	msg := sprintf("%s: no owner tag", [r.address])
}
