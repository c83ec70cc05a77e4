//! The spam classifier's records (`bayes/…`) and the verdicts that held tickets as spam
//! (`spam/{ticket}`), stored as the spam rules give them.

use serde::Serialize;

use crate::ids::TicketId;

use super::{Error, Store, TxResult, WriteTx, get_json};

const KEY_CLASSIFIER_DOCS: &str = "bayes/docs";

fn classifier_token_key(token: &str) -> String {
    format!("bayes/t/{token}")
}

fn classifier_learned_key(mail_key: &str) -> String {
    format!("bayes/m/{mail_key}")
}

pub(super) fn spam_record_key(id: TicketId) -> String {
    format!("spam/{:020}", id.0)
}

impl Store {
    /// How many spam and ham messages the classifier has learned.
    pub fn classifier_docs(&self) -> Result<crate::model::Docs, Error> {
        Ok(get_json(&self.tree, KEY_CLASSIFIER_DOCS)?.unwrap_or_default())
    }

    /// In how many learned spam and ham messages a token appeared.
    pub fn classifier_counts(&self, token: &str) -> Result<Option<crate::model::Counts>, Error> {
        get_json(&self.tree, &classifier_token_key(token))
    }

    /// Why a ticket is held as spam.
    pub fn spam_record<R: serde::de::DeserializeOwned>(
        &self,
        id: TicketId,
    ) -> Result<Option<R>, Error> {
        get_json(&self.tree, &spam_record_key(id))
    }
}

impl WriteTx<'_> {
    pub fn classifier_docs(&self) -> TxResult<crate::model::Docs> {
        Ok(self.get(KEY_CLASSIFIER_DOCS)?.unwrap_or_default())
    }

    pub fn set_classifier_docs(&self, docs: crate::model::Docs) -> TxResult<()> {
        self.put(KEY_CLASSIFIER_DOCS, &docs)
    }

    pub fn classifier_counts(&self, token: &str) -> TxResult<Option<crate::model::Counts>> {
        self.get(&classifier_token_key(token))
    }

    /// Stores a token's counts; a token no learned message holds any more is removed.
    pub fn set_classifier_counts(&self, token: &str, counts: crate::model::Counts) -> TxResult<()> {
        if counts.spam == 0 && counts.ham == 0 {
            self.tree.remove(classifier_token_key(token).as_bytes())?;
            return Ok(());
        }
        self.put(&classifier_token_key(token), &counts)
    }

    /// The label a message (by its dedupe key) was learned with.
    pub fn trained_label(&self, mail_key: &str) -> TxResult<Option<crate::model::Label>> {
        self.get(&classifier_learned_key(mail_key))
    }

    pub fn set_trained_label(&self, mail_key: &str, label: crate::model::Label) -> TxResult<()> {
        self.put(&classifier_learned_key(mail_key), &label)
    }

    /// Forgets that a message was learned (erasure; its tokens are subtracted by the caller).
    pub fn remove_trained_label(&self, mail_key: &str) -> TxResult<()> {
        self.tree
            .remove(classifier_learned_key(mail_key).as_bytes())?;
        Ok(())
    }

    pub fn put_spam_record<R: Serialize>(&self, id: TicketId, record: &R) -> TxResult<()> {
        self.put(&spam_record_key(id), record)
    }
}
