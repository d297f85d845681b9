-- mv_current_state equals the current-state keys computed directly (no writes since refresh).
with

direct as (
    select
        organizations.id as organization_id,
        (
            select count(*) from {{ source('application', 'jobs') }} as jobs
            where
                jobs.organization_id = organizations.id and jobs.deleted_at is null
                and jobs.status in ('scheduled', 'in_progress')
        ) as active_installations,
        (
            select count(*) from {{ source('application', 'customers') }} as customers
            where
                customers.organization_id = organizations.id and customers.deleted_at is null
                and customers.status = 'active'
        ) as active_customers
    from {{ source('application', 'organizations') }} as organizations
),

materialized as (
    select
        organization_id,
        active_installations,
        active_customers
    from {{ ref('mv_current_state') }}
)

{{ symmetric_difference('materialized', 'direct') }}
