CREATE TABLE `operator_actions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`actor` text NOT NULL,
	`reason` text,
	`action` text NOT NULL,
	`target` text,
	`count` integer DEFAULT 0 NOT NULL,
	`dry_run` integer DEFAULT false NOT NULL,
	`details_json` text,
	`at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `events` ADD `replay_of` text;--> statement-breakpoint
ALTER TABLE `events` ADD `action_id` integer;