-- The business_day macro puts every seeded instant on its expected calendar day.
select
    cases.scenario,
    cases.expected_day,
    {{ business_day('cases.ts_utc', 'Australia/Sydney') }} as sydney_day,
    {{ business_day('cases.ts_utc', 'UTC') }} as utc_day
from {{ ref('business_day_cases') }} as cases
where cases.expected_day <> case cases.timezone
    when 'UTC' then {{ business_day('cases.ts_utc', 'UTC') }}
    else {{ business_day('cases.ts_utc', 'Australia/Sydney') }}
end
