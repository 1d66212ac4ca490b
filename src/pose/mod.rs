pub mod modality;
