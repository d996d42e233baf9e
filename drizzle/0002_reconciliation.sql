CREATE TABLE `drifts` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`payment_id` text NOT NULL,
	`event_seq` integer,
	`ledger_view` text NOT NULL,
	`platform_view` text NOT NULL,
	`summary` text NOT NULL,
	`at` integer NOT NULL,
	FOREIGN KEY (`payment_id`) REFERENCES `payments`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`event_seq`) REFERENCES `events`(`seq`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `drifts_payment_idx` ON `drifts` (`payment_id`);--> statement-breakpoint
ALTER TABLE `payments` ADD `next_check_at` integer;--> statement-breakpoint
ALTER TABLE `payments` ADD `check_attempts` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `payments` ADD `stale_at` integer;--> statement-breakpoint
CREATE INDEX `payments_next_check_idx` ON `payments` (`next_check_at`);