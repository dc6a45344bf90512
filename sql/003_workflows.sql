-- 003_workflows.sql -- approval workflows: definitions, instances, their
-- history and the approvals of each step. Applied by store_open, which moves
-- user_version 2 -> 3.
--
-- Only the hub writes these tables, each change in the same transaction as
-- the events it causes (and their webhook deliveries).

-- A definition: a name and its ordered steps, each naming who may approve it
-- (roles and/or users) and how many distinct approvals it needs.
CREATE TABLE workflow_definitions (
	name TEXT PRIMARY KEY,            -- what instances name it by ("odds_change")
	steps TEXT NOT NULL,              -- JSON array of {name, approvers: {roles: [..], users: [..]}, required}
	created_at TEXT NOT NULL
);

-- One row per workflow instance. The API names it "wf_" || id.
CREATE TABLE workflows (
	-- AUTOINCREMENT: an id is never handed out twice, since events and
	-- webhook receivers refer to it.
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	definition TEXT NOT NULL REFERENCES workflow_definitions (name),
	status TEXT NOT NULL,             -- pending | in_progress | approved | rejected | cancelled
	step INTEGER NOT NULL,            -- index (0-based) into the definition's steps: the current step;
	                                  -- once approved, the number of steps
	data TEXT NOT NULL,               -- JSON given by the creator
	version INTEGER NOT NULL,         -- 1 when created, +1 per change
	created_by TEXT NOT NULL,         -- user id; its room user:{created_by} receives every event
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
-- The API's list filters, newest first.
CREATE INDEX workflows_status ON workflows (status, id);
CREATE INDEX workflows_definition ON workflows (definition, id);
CREATE INDEX workflows_created_by ON workflows (created_by, id);

-- Everything that happened to a workflow, in order.
CREATE TABLE workflow_history (
	id INTEGER PRIMARY KEY,
	workflow_id INTEGER NOT NULL REFERENCES workflows (id),
	actor TEXT NOT NULL,              -- who did it (the creator for "created")
	action TEXT NOT NULL,             -- created | approved | rejected | cancelled
	step TEXT,                        -- name of the step it happened at (NULL once approved)
	comment TEXT,
	time TEXT NOT NULL
);
CREATE INDEX workflow_history_workflow ON workflow_history (workflow_id, id);

-- The approvals given, one per approver and step: the primary key is what
-- makes an approver count once per step.
CREATE TABLE workflow_approvals (
	workflow_id INTEGER NOT NULL REFERENCES workflows (id),
	step INTEGER NOT NULL,            -- index of the step approved
	actor TEXT NOT NULL,
	comment TEXT,
	time TEXT NOT NULL,
	PRIMARY KEY (workflow_id, step, actor)
);
