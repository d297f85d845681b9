-- Claims created per business day, by status and type. The mean resolution time is kept as
-- its two additive parts (total seconds, resolved count) so any range divides exactly once.
with

claims as (
    select * from {{ ref('stg_warranty_claims') }}
),

final as (
    select
        organization_id,
        {{ business_day('created_at') }} as business_day,
        count(*) as warranty_claims,
        {{ count_by('status', metric_values('claim_statuses'), 'claims_status') }},
        {{ count_by('claim_type', metric_values('claim_types'), 'claims_type') }},
        count(resolved_at) as resolved_claims,
        coalesce(sum(extract(epoch from resolved_at - created_at)), 0) as resolution_seconds
    from claims
    group by 1, 2
)

select * from final
