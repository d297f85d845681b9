-- The current-state keys of contract §3: a snapshot of now per organization, not a range.
with

organizations as (
    select * from {{ source('application', 'organizations') }}
),

final as (
    select
        organizations.id as organization_id,
        (
            select count(*) from {{ source('application', 'jobs') }} as jobs
            where
                jobs.organization_id = organizations.id
                and jobs.deleted_at is null
                and jobs.status in ('scheduled', 'in_progress')
        ) as active_installations,
        (
            select count(*) from {{ source('application', 'warranty_claims') }} as claims
            where
                claims.organization_id = organizations.id
                and claims.deleted_at is null
                and claims.status in ('pending', 'approved')
        ) as open_warranty_claims,
        (
            select coalesce(sum(opportunities.value_cents::numeric * opportunities.probability) / 100, 0)
            from {{ source('application', 'opportunities') }} as opportunities
            where
                opportunities.organization_id = organizations.id
                and opportunities.deleted_at is null
                and opportunities.stage not in ('won', 'lost')
        ) as current_pipeline_cents,
        (
            select count(*) from {{ source('application', 'customers') }} as customers
            where
                customers.organization_id = organizations.id
                and customers.deleted_at is null
                and customers.status = 'active'
        ) as active_customers
    from organizations
)

select * from final
