-- The current-state keys of contract §3: a snapshot of now per organization, not a range.
-- One correlated count per key, so each reads only its organization's rows through the
-- partial indexes of models/indexes/source_indexes.sql.
with

organizations as (
    select * from {{ ref('stg_organizations') }}
),

jobs as (
    select * from {{ ref('stg_jobs') }}
),

claims as (
    select * from {{ ref('stg_warranty_claims') }}
),

opportunities as (
    select * from {{ ref('stg_opportunities') }}
),

customers as (
    select * from {{ ref('stg_customers') }}
),

final as (
    select
        organizations.organization_id,
        (
            select count(*) from jobs
            where
                jobs.organization_id = organizations.organization_id
                and jobs.status in ('scheduled', 'in_progress')
        ) as active_installations,
        (
            select count(*) from claims
            where
                claims.organization_id = organizations.organization_id
                and claims.status in ('pending', 'approved')
        ) as open_warranty_claims,
        (
            select coalesce(sum(opportunities.value_cents::numeric * opportunities.probability) / 100, 0)
            from opportunities
            where
                opportunities.organization_id = organizations.organization_id
                and opportunities.stage not in ('won', 'lost')
        ) as current_pipeline_cents,
        (
            select count(*) from customers
            where
                customers.organization_id = organizations.organization_id
                and customers.status = 'active'
        ) as active_customers
    from organizations
)

select * from final
