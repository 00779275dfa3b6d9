package controlplane

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// Me is the API key a request authenticated with, as GET /v1/me shows it:
// enough for a client (the dashboard) to know the tenant and whether it may
// make changes before it tries one. Never the key or its hash.
type Me struct {
	TenantID string `json:"tenant_id" example:"acme" doc:"The key's tenant; empty for an operator key"`
	KeyID    string `json:"key_id" example:"key_01JD5A"`
	KeyName  string `json:"key_name" example:"ci"`
	Role     string `json:"role" enum:"admin,viewer,operator" doc:"admin reads and writes; viewer only reads; operator manages the rollout (/v1/rollout) and the delivery quotas (/v1/quotas), nothing of a tenant's"`
	CanWrite bool   `json:"can_write" doc:"Whether this key may create, change and delete a tenant's resources (role admin)"`
}

type meOut struct {
	Body Me
}

func (s *Server) registerMe(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "get-me", Method: http.MethodGet, Path: "/v1/me", Tags: []string{"API keys"},
		Summary:     "Show the API key of this request",
		Description: "The tenant, key and role the bearer key of the request stands for.",
		Security:    []map[string][]string{bearer, operator}, Errors: []int{401},
	}, func(ctx context.Context, _ *struct{}) (*meOut, error) {
		p := principalFrom(ctx)
		return &meOut{Body: Me{TenantID: p.TenantID, KeyID: p.KeyID, KeyName: p.KeyName, Role: p.Role, CanWrite: p.Role == RoleAdmin}}, nil
	})
}
