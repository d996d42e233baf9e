-- A refusal (63, 73, 83, 93, 94) now ranks just above the pending stage it ends (src/ledger/status-table.ts,
-- StatusCodeInfo.answers). Rows written before keep the rank of their stage until this sets it.
UPDATE "payments" SET "rank" = CASE "status_code" WHEN 63 THEN 31 WHEN 73 THEN 46 WHEN 83 THEN 51 WHEN 93 THEN 31 WHEN 94 THEN 51 END WHERE "status_code" IN (63, 73, 83, 93, 94);
--> statement-breakpoint
UPDATE "refunds" SET "rank" = CASE "status_code" WHEN 63 THEN 31 WHEN 73 THEN 46 WHEN 83 THEN 51 WHEN 93 THEN 31 WHEN 94 THEN 51 END WHERE "status_code" IN (63, 73, 83, 93, 94);
