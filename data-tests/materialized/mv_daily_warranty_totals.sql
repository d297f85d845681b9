-- mv_daily_warranty summed over all days equals the claims table aggregated directly.
with

materialized as (
    select
        organization_id,
        sum(warranty_claims) as warranty_claims,
        sum(claims_status_resolved) as resolved_status,
        sum(claims_type_defect) as defects,
        sum(resolved_claims) as resolved_claims,
        sum(resolution_seconds) as resolution_seconds
    from {{ ref('mv_daily_warranty') }}
    group by 1
),

direct as (
    select
        organization_id,
        count(*) as warranty_claims,
        count(*) filter (where status = 'resolved') as resolved_status,
        count(*) filter (where claim_type = 'defect') as defects,
        count(resolved_at) as resolved_claims,
        coalesce(sum(extract(epoch from resolved_at - created_at)), 0) as resolution_seconds
    from {{ source('application', 'warranty_claims') }}
    where deleted_at is null
    group by 1
)

{{ symmetric_difference('materialized', 'direct') }}
