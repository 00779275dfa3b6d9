// Package check keeps the Terraform module in deploy/terraform honest
// without Terraform (neither Terraform nor its providers can be installed
// here): it parses the module with HCL, evaluates its variables, locals,
// resources and outputs the way Terraform does (HCL's expressions and
// Terraform's functions from go-cty), and its tests compare the result with
// what the binary creates and does: every topic with its settings, the
// retry tiers, and the ACLs each component needs.
//
// It is a module of its own so that HCL stays out of the product's go.mod.
package check
