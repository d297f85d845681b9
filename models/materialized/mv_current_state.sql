{{ config(unique_key=['organization_id'], tags=['5min']) }}

-- Rows stay in key order: a materialized view keeps the physical order of its query after
-- every refresh, so one organization's days sit together on few pages.
select * from {{ ref('current_state') }}
order by organization_id
